"""Recipes: validation reports every error at once; runs are cached and recorded."""

import json
import subprocess
import sys
import textwrap

import pytest

from fmkit.errors import BadInputError
from fmkit.recipe import load_recipe


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_error_is_reported_at_once_with_did_you_mean(tmp_path):
    path = write(tmp_path, """
        name: broken
        stagse: []
        stages:
          - name: ft
            stage: finetune
            data: {source: x.csv, sed: 3}
            method: lorra
            trian: {epochs: 1}
          - stage: evaluat
          - name: ev
            stage: evaluate
            bundle: later
          - name: later
            stage: finetune
            data: {source: x.csv}
            module: torch.nn.Linear
        """)
    with pytest.raises(BadInputError) as error:
        load_recipe(path)
    message = str(error.value)
    expected = [
        "stagse: unknown top-level key. Did you mean 'stages'?",
        "stages[0] (ft).data.sed: unknown key. Did you mean 'seed'?",
        "unknown method 'lorra'; registered: full, lora. Did you mean 'lora'?",
        "stages[0] (ft).trian: unknown key. Did you mean 'train'?",
        "stages[1] (evaluat).stage: unknown stage 'evaluat'; registered: anonymize, assistant, audit, card, compress, evaluate, finetune, gate, mitigate, pretrain, recommender, report. Did you mean 'evaluate'?",
        "stages[2] (ev).bundle: stage 'later' runs later",
        "stages[3] (later).module: unknown key.",
    ]
    for fragment in expected:
        assert fragment in message
    assert message.startswith(f"{path}: 7 error(s)")


def test_shipped_recipes_validate():
    for name in ("quickstart", "full"):
        recipe = load_recipe(f"recipes/{name}.yaml")
        assert recipe.stages[0].config.model == "minilm"


def test_recipe_runs_caches_and_records(tiny_bert_dir, reviews_csv, tmp_path):
    path = write(tmp_path, f"""
        name: tiny
        stages:
          - name: ft
            stage: finetune
            model: {tiny_bert_dir}
            data: {{source: {reviews_csv}}}
            train: {{epochs: 2, batch_size: 16, learning_rate: 0.005, progress: false, precision: fp32}}
          - name: ev
            stage: evaluate
            bundle: ft
            split: test
        """)
    workspace = tmp_path / "ws"
    command = [sys.executable, "-m", "fmkit", "run", str(path), "--workspace", str(workspace), "--json"]
    first = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    second = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert [s["cached"] for s in first["stages"]] == [False, False]
    assert [s["cached"] for s in second["stages"]] == [True, True]
    assert first["stages"][1]["metrics"] == second["stages"][1]["metrics"]
    run_dir = workspace / "runs" / first["run"]
    assert {p.name for p in run_dir.iterdir()} >= {"recipe.yaml", "resolved.json", "run.log", "outputs.json", "ft"}
    assert (workspace / "runs" / second["run"] / "ft" / "fmkit.json").is_file()
    assert "schedule: 2 epochs" in (run_dir / "run.log").read_text()  # the stage's own choices reach the run log
    listing = subprocess.run([sys.executable, "-m", "fmkit", "runs", "--workspace", str(workspace), "--json"],
                             capture_output=True, text=True, check=True)
    runs = json.loads(listing.stdout)
    assert [r["status"] for r in runs] == ["done", "done"]
    assert runs[0]["stages"][0]["cached"] == 1


def test_audit_card_report_and_gate_stages_run_in_a_recipe(tiny_bert_dir, reviews_csv, tmp_path):
    terms = tmp_path / "terms.json"  # the synthetic reviews hold no identity term; swap two of their words
    terms.write_text(json.dumps({"pairs": [{"category": "test", "a": "film", "b": "movie"}]}))
    path = write(tmp_path, f"""
        name: audited
        stages:
          - name: ft
            stage: finetune
            model: {tiny_bert_dir}
            data: {{source: {reviews_csv}}}
            train: {{epochs: 2, batch_size: 16, learning_rate: 0.005, progress: false, precision: fp32}}
          - name: audit-ft
            stage: audit
            bundle: ft
            checks: [robustness, counterfactual, explanations]
            max_rows: 30
            explain_rows: 5
            n_steps: 4
            terms: {terms}
            progress: false
          - name: card-ft
            stage: card
            bundle: ft
          - name: report
            stage: report
            threads: 1
          - name: robust-enough
            stage: gate
            bundle: ft
            min_stability_rate: 0.5
            max_counterfactual_flip_rate: 1.0
        """)
    workspace = tmp_path / "ws"
    command = [sys.executable, "-m", "fmkit", "run", str(path), "--workspace", str(workspace), "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)
    run_dir = workspace / "runs" / first["run"]
    manifest = json.loads((run_dir / "ft" / "fmkit.json").read_text())
    assert {"robustness", "counterfactual", "explanations"} <= set(manifest["audits"])
    assert (run_dir / "ft" / "reports" / "MODEL_CARD.md").is_file()
    assert (run_dir / "report" / "index.html").is_file()
    assert first["stages"][3]["frontier"] == ["ft"]
    second = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert [s["cached"] for s in second["stages"]] == [True, True, True, False, True]  # report always reruns
    assert (workspace / "runs" / second["run"] / "report" / "index.html").is_file()
