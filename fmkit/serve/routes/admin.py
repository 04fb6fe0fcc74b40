"""Admin routes: load (or replace) and unload models, create and revoke API keys. Admin keys only."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Path, Request  # module level: FastAPI resolves the string annotations against these globals

from fmkit.serve.access import ADMIN
from fmkit.serve.config import MODEL_NAME, MODEL_NAME_RULE, model_name_problem
from fmkit.serve.errors import ApiError
from fmkit.serve.routes.server import ERRORS, Server, log
from fmkit.serve.schemas import KeyRequest, LoadRequest, ModelSummary


def add_routes(app, server: Server) -> None:
    access, state = server.access, server.state

    @app.post("/v1/models/{name}:load", tags=["admin"], response_model=ModelSummary, responses=ERRORS)
    async def load(name: Annotated[str, Path(pattern=MODEL_NAME.pattern, description=MODEL_NAME_RULE)],
                   body: LoadRequest, request: Request):
        """Load (or replace) model NAME from a bundle directory on the server (inside --bundle-root when set)."""
        from fmkit.errors import FmkitError

        key = access.authorize(request, ADMIN)
        started = time.perf_counter()
        try:
            refuse_per_worker(server.config, "load")
            path = bundle_path(name, body.bundle, server.config.bundle_root)
            slot = await state.load(name, path)
        except ApiError as error:
            access.audit(key, "load", name, None, error.status, started)
            error.audited = True
            raise
        except FmkitError as error:
            access.audit(key, "load", name, None, 422, started)
            raise ApiError(422, "bad_bundle", str(error), audited=True) from None
        except Exception as error:  # damaged weights, unreadable files: the bundle's problem, not the server's
            log.exception("loading %s from %s failed", name, body.bundle)
            access.audit(key, "load", name, None, 422, started)
            raise ApiError(422, "bad_bundle", f"could not load {body.bundle!r}: {type(error).__name__}: {error}",
                           audited=True) from None
        access.audit(key, "load", name, None, 200, started)
        return slot.summary

    @app.delete("/v1/models/{name}", tags=["admin"], responses=ERRORS)
    async def unload(name: str, request: Request):
        key = access.authorize(request, ADMIN)
        refuse_per_worker(server.config, "unload")
        server.slot_for(name)
        await state.unload(name)
        access.audit(key, "unload", name, None, 200, time.perf_counter())
        return {"unloaded": name}

    @app.post("/v1/keys", tags=["admin"], responses=ERRORS)
    async def create_key(body: KeyRequest, request: Request):
        from fmkit.errors import BadInputError

        access.authorize(request, ADMIN)
        try:
            token, record = state.keys.create(body.role, body.models, body.note)
        except BadInputError as error:
            raise ApiError(422, "invalid_key_request", str(error)) from None
        return {"key": token, "id": record.id, "role": record.role, "models": list(record.models),
                "note": "shown once: store it now"}

    @app.delete("/v1/keys/{key_id}", tags=["admin"], responses=ERRORS)
    async def revoke_key(key_id: str, request: Request):
        from fmkit.errors import BadInputError

        access.authorize(request, ADMIN)
        try:
            record = state.keys.revoke(key_id)
        except BadInputError as error:
            raise ApiError(404, "unknown_key", str(error)) from None
        return {"revoked": record.id}


def refuse_per_worker(config, action: str) -> None:
    """With --workers N a request reaches one worker: loading a model there alone would make answers depend on
    which worker took the connection. The served models are then fixed at start (409)."""
    if config.workers > 1:
        raise ApiError(409, "per_worker", f"this server runs {config.workers} worker processes and a request reaches "
                       f"only one of them, so :{action} would change one worker; name the models with --bundle at "
                       "start (a SIGHUP to the server restarts its workers one by one, reloading them from disk)")


def bundle_path(name: str, text: str, bundle_root):
    """The bundle directory a :load request names, resolved, refused outside ``bundle_root`` when one is set."""
    from pathlib import Path as FilePath

    problem = model_name_problem(name)
    if problem:
        raise ApiError(422, "invalid_model_name", problem)
    try:
        path = FilePath(text).resolve()  # symlinks and .. resolved: what is checked is what is opened
    except (OSError, ValueError, RuntimeError):
        raise ApiError(422, "bad_bundle", f"{text!r} is not a usable path") from None
    if bundle_root is not None and not path.is_relative_to(FilePath(bundle_root).resolve()):
        raise ApiError(403, "outside_bundle_root", f"{text!r} is not inside the server's --bundle-root; "
                       "this server loads bundles from there only")
    try:
        if path.is_dir():
            return path
    except (OSError, ValueError):
        pass
    raise ApiError(404, "bundle_not_found", f"no bundle directory {text!r} on the server")
