"""The layers, read from the import graph (every ``import``, at module level and inside functions).

core (bundle, data, train, tasks) never imports cli, recipe, serve, apps, tune or tracking; tracking sits on
the training-callbacks seam only; nothing but cli, recipe and
serve imports apps; compress, privacy and audit never import each other (what they share lives below
them); serve never imports train; no two
modules import each other at module level; and ``import fmkit``, every ``*/config.py`` and
``fmkit run --list-stages`` load no torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fmkit"
CORE = ("bundle", "data", "train", "tasks")
ABOVE_CORE = ("cli", "recipe", "serve", "apps", "tune", "tracking")
USER_FACING = ("cli", "recipe", "serve")  # may use an app (fmkit assistant, the assistant endpoint)
APPS = ("apps",)  # applications built from the stages, like a user would: nothing below them imports them
SIBLINGS = ("compress", "privacy", "audit")  # stages beside each other: none may import another


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def import_graph() -> dict[str, list[tuple[str, int, bool]]]:
    """module -> [(imported fmkit module, line, at module level)], relative imports resolved."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top_level = {id(node) for node in tree.body}
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from fmkit.x import y` may import the module fmkit.x.y
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            found += [(target, node.lineno, id(node) in top_level) for target in targets
                      if target == "fmkit" or target.startswith("fmkit.")]
        graph[name] = found
    modules = set(graph)
    resolved = {}
    for name, found in graph.items():
        edges = []
        for target, line, top in found:
            while target not in modules:  # an attribute: the module that defines it
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.append((target, line, top))
        resolved[name] = edges
    return resolved


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_between(sources, targets) -> list[str]:
    return sorted({f"{module}:{line} imports {target}" for module, edges in import_graph().items()
                   if layer(module) in sources for target, line, _ in edges
                   if layer(target) in targets and layer(target) != layer(module)})


def test_the_graph_sees_function_level_imports():
    edges = {(target, top) for target, _, top in import_graph()["fmkit.cli.commands.audit"]}
    assert ("fmkit.audit.run", False) in edges  # imported inside run(): the cheap-import habit


def test_core_never_imports_cli_recipe_or_serve():
    assert imports_between(CORE, ABOVE_CORE) == []


def test_tracking_uses_only_the_training_callbacks_seam():
    """MLflow tracking watches training through TrainCallback and reads the registry's SQLite itself."""
    used = {target for module, edges in import_graph().items() if layer(module) == "tracking"
            for target, _, _ in edges if layer(target) != "tracking"}
    assert used <= {"fmkit.train.callbacks", "fmkit.errors"}, used


@pytest.mark.parametrize("package", SIBLINGS)
def test_compress_privacy_and_audit_never_import_each_other(package):
    assert imports_between({package}, set(SIBLINGS) - {package}) == []


def test_nothing_below_the_apps_imports_them():
    below = {layer(module) for module in import_graph()} - set(APPS) - set(USER_FACING)
    assert imports_between(below, set(APPS)) == []


def test_the_apps_layer_is_seen():
    assert "apps" in {layer(module) for module in import_graph()}


def test_serve_never_imports_train():
    assert imports_between({"serve"}, {"train"}) == []


def test_no_import_loop_at_module_level():
    """A package may import its children; no module imports, at module level, one that imports it back."""
    graph = {name: {target for target, _, top in edges if top} for name, edges in import_graph().items()}
    loops = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                loops.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert loops == []


HEAVY = ("torch", "transformers", "peft", "onnxruntime", "sklearn")


def loaded_after(code: str) -> list[str]:
    probe = (f"{code}\nimport sys\nloaded = {{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}\n"
             "print(' '.join(sorted(loaded | ({'fmkit.train.loop'} & set(sys.modules)))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


CONFIGS = sorted(module_name(path) for path in PACKAGE.rglob("config.py"))


def test_import_fmkit_loads_no_torch():
    assert loaded_after("import fmkit") == []


@pytest.mark.parametrize("module", CONFIGS)
def test_configs_load_no_torch(module):
    assert loaded_after(f"import {module}") == []


def test_the_training_config_and_hooks_protocol_load_no_torch():
    assert loaded_after("from fmkit.train import TrainConfig, TrainHooks") == []


def test_listing_the_recipe_stages_loads_no_torch():
    code = ("import contextlib, io\nfrom fmkit.cli.main import main\nout = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n    assert main(['run', '--list-stages']) == 0\n"
            "assert 'finetune' in out.getvalue() and 'audit' in out.getvalue(), out.getvalue()")
    assert loaded_after(code) == []


def test_serving_a_bundle_never_loads_the_training_loop(tiny_bundle, tmp_path):
    """Transitively too: the app, its startup and a prediction, with the runtime's own imports."""
    code = f"""
import asyncio, httpx
from fmkit.serve.app import create_app
from fmkit.serve.config import ServeConfig
from fmkit.serve.keys import KeyStore

key = KeyStore({str(tmp_path)!r}).create("admin", None)[0]
app = create_app(ServeConfig(bundles={{"reviews": {str(tiny_bundle)!r}}}, workspace={str(tmp_path)!r}))

async def predict():
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/v1/models/reviews:predict", json={{"texts": ["a warm film"]}},
                                         headers={{"Authorization": f"Bearer {{key}}"}})
            assert response.status_code == 200, response.text

asyncio.run(predict())
"""
    loaded = loaded_after(code)
    assert "torch" in loaded  # the prediction really ran on the PyTorch runtime
    assert "fmkit.train.loop" not in loaded
