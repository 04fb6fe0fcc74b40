"""`import fmkit` and `fmkit --help` must not load torch or other heavy libraries."""

import subprocess
import sys

import pytest

from fmkit.cli.main import COMMANDS

HEAVY = ("torch", "transformers", "peft", "pandas", "numpy", "sklearn", "matplotlib", "mlflow", "optuna")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return output.split()


def test_import_fmkit_loads_no_heavy_library():
    assert _loaded_after("import fmkit") == []


def test_cli_parser_loads_no_heavy_library():
    assert _loaded_after("from fmkit.cli.main import build_parser\nbuild_parser()") == []


@pytest.mark.parametrize("command", [[]] + [[name] for name in COMMANDS])
def test_every_help_explains_itself(command):
    result = subprocess.run([sys.executable, "-m", "fmkit", *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: fmkit" in result.stdout
    assert len(result.stdout) > 200  # a description, not just a usage line


def test_no_command_prints_help_and_exits_2():
    result = subprocess.run([sys.executable, "-m", "fmkit"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "COMMAND" in result.stdout
