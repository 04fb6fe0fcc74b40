"""The manifest seal: a digest over what the manifest claims, plus an HMAC with the workspace key.

The content digest covers the model's files but not ``fmkit.json``, so that recording metrics
does not change a model's identity. The seal covers the manifest itself: every field but the
seal, as canonical JSON (sorted keys, no spaces, UTF-8). Every fmkit writer recomputes it; a hand
edit breaks the digest, and a hand edit that also recomputes the digest breaks the HMAC wherever
the signing key is known (``$FMKIT_SIGNING_KEY``, else ``./.fmkit/signing.key``, created 0600 on
first use). A manifest signed with another key is reported as such; its digest is still checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmkit.errors import BadInputError

SEAL_FIELD = "seal"
SEALED_SINCE_SCHEMA = 2  # manifests of schema 1 were written before seals existed
KEY_ENV = "FMKIT_SIGNING_KEY"
KEY_FILE = Path(".fmkit") / "signing.key"
ALGORITHM = "sha256-canonical-json+hmac-sha256"


def canonical_bytes(data: dict[str, Any]) -> bytes:
    """The manifest without its seal, as the bytes the seal is computed over."""
    body = {key: value for key, value in data.items() if key != SEAL_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def key_id(key: bytes) -> str:
    """A short public name of a key: which key signed, without revealing it."""
    return hashlib.sha256(b"fmkit-signing-key:" + key).hexdigest()[:16]


def _create_key_file(path: Path) -> None:
    """Write a new random key readable by its owner only; a concurrent creator's key wins intact."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise BadInputError(f"cannot create the manifest signing key {path} ({error.strerror}); run fmkit from a "
                            f"writable workspace directory or set ${KEY_ENV} to a secret of 16+ characters") from None
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)  # fails if another process created the key first: keep theirs
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def signing_key(*, create: bool) -> bytes | None:
    """This workspace's key: ``$FMKIT_SIGNING_KEY``, else ``./.fmkit/signing.key`` (made when ``create``)."""
    from_environment = os.environ.get(KEY_ENV)
    if from_environment is not None:
        if len(from_environment) < 16:
            raise BadInputError(f"${KEY_ENV} is {len(from_environment)} characters; a signing key needs 16 or more "
                                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return from_environment.encode()
    path = Path.cwd() / KEY_FILE
    if not path.is_file():
        if not create:
            return None
        _create_key_file(path)
    key = path.read_bytes().strip()
    if len(key) < 16:
        raise BadInputError(f"{path} holds {len(key)} bytes; a signing key needs 16 or more. Delete it (fmkit makes a "
                            f"new one) or set ${KEY_ENV}")
    return key


def make_seal(data: dict[str, Any]) -> dict[str, str]:
    """The seal of manifest ``data`` (a JSON-ready dict), signed with this workspace's key."""
    body = canonical_bytes(data)
    key = signing_key(create=True)
    return {"algorithm": ALGORITHM, "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "key_id": key_id(key),
            "hmac": hmac.new(key, body, hashlib.sha256).hexdigest()}


@dataclass(frozen=True)
class SealCheck:
    state: str  # "ok", "unknown-key" (digest ok, signed elsewhere), "unsealed" (older fmkit), "edited"
    message: str

    @property
    def edited(self) -> bool:
        return self.state == "edited"


def check_seal(data: dict[str, Any]) -> SealCheck:
    """Does the manifest ``data`` (as read from disk) still say what fmkit wrote?"""
    seal = data.get(SEAL_FIELD)
    schema = data.get("schema_version", 1)
    if not seal:
        if isinstance(schema, int) and schema < SEALED_SINCE_SCHEMA:
            return SealCheck("unsealed", f"unsealed (made by an older fmkit, schema {schema})")
        return SealCheck("edited", f"manifest edited outside fmkit: schema {schema} manifests carry a seal, this one "
                                   "has none")
    if not isinstance(seal, dict) or not all(isinstance(seal.get(k), str) for k in ("digest", "key_id", "hmac")):
        return SealCheck("edited", "manifest edited outside fmkit: its seal is malformed")
    body = canonical_bytes(data)
    if not hmac.compare_digest(seal["digest"], "sha256:" + hashlib.sha256(body).hexdigest()):
        return SealCheck("edited", "manifest edited outside fmkit: its fields no longer match the seal's digest")
    key = signing_key(create=False)
    if key is None or key_id(key) != seal["key_id"]:
        here = f"this workspace's key is {key_id(key)}" if key else "this workspace has no signing key"
        return SealCheck("unknown-key", f"signed with an unknown key {seal['key_id']} ({here}); digest ok, "
                                        "signature not checked")
    if not hmac.compare_digest(seal["hmac"], hmac.new(key, body, hashlib.sha256).hexdigest()):
        return SealCheck("edited", "manifest edited outside fmkit: the digest was recomputed by hand, but the "
                                   f"signature of key {seal['key_id']} does not match")
    return SealCheck("ok", f"sealed, signed with this workspace's key {seal['key_id']}")
