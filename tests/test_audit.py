"""Counterfactual swaps, robustness noise, integrated-gradients completeness, the audit run, report and CLI."""

import json
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import headless_page, needs_chromium
from fmkit.audit.counterfactual import TermPair, counterfactual_audit, load_term_pairs, swap
from fmkit.audit.robustness import PERTURBATIONS, robustness_audit
from fmkit.errors import BadInputError


def fmkit(*args):
    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    copy = tmp_path / "reviews"
    shutil.copytree(tiny_bundle, copy)
    return copy


def test_swap_exchanges_both_terms_at_once_and_keeps_case():
    pair = TermPair("gender", "he", "she")
    assert swap("He said she was great; he left.", pair) == "She said he was great; she left."
    assert swap("the theme is shepherds", pair) is None  # whole words only
    assert swap("HE shouted", pair) == "SHE shouted"
    assert swap("Mr. Smith", TermPair("gender", "mr.", "ms.")) == "Ms. Smith"


def test_shipped_terms_load_and_a_user_file_extends_them(tmp_path):
    shipped = load_term_pairs()
    assert {"gender", "name", "nationality", "religion"} <= {p.category for p in shipped}
    extra = tmp_path / "terms.json"
    extra.write_text(json.dumps({"pairs": [{"category": "team", "a": "Celtics", "b": "Lakers"}]}))
    assert load_term_pairs(extra)[-1] == TermPair("team", "Celtics", "Lakers")
    extra.write_text(json.dumps({"pairs": [{"a": "same", "b": "SAME"}]}))
    with pytest.raises(BadInputError, match="with itself"):
        load_term_pairs(extra)
    with pytest.raises(BadInputError, match="does not exist"):
        load_term_pairs(tmp_path / "missing.json")


def test_counterfactual_counts_flips_of_a_biased_scorer():
    # A scorer that says "pos" whenever "she" appears: every he<->she swap flips.
    def biased(texts):
        positive = np.array([1.0 if re.search(r"\bshe\b", t.lower()) else 0.0 for t in texts])
        return np.stack([1 - positive, positive], axis=1)

    texts = ["he was great", "she was great", "the film was great", "he and she met"] * 3
    report = counterfactual_audit(biased, ["neg", "pos"], texts, [TermPair("gender", "he", "she")], min_sentences=3)
    pair = report["pairs"]["he<->she"]
    assert pair["sentences"] == 9  # "he and she met" swaps too (to "she and he met": same prediction)
    assert pair["flips"] == 6 and pair["flip_rate"] == pytest.approx(6 / 9)
    assert report["worst_pair"] == "he<->she"
    assert pair["mean_absolute_shift"] == pytest.approx(6 / 9)


def test_perturbations_are_seeded_and_change_the_text():
    text = "The acting, frankly, is superb and the story is moving."
    for name in PERTURBATIONS.names():
        a = PERTURBATIONS.get(name)(text, random.Random(1))
        b = PERTURBATIONS.get(name)(text, random.Random(1))
        assert a == b and a != text, name


def test_robustness_of_a_case_sensitive_scorer():
    def case_sensitive(texts):
        positive = np.array([1.0 if "Good" in t else 0.0 for t in texts])
        return np.stack([1 - positive, positive], axis=1)

    report = robustness_audit(case_sensitive, ["neg", "pos"], ["Good film", "bad film"], ["pos", "neg"],
                              perturbations=["lowercase", "extra-whitespace"])
    assert report["perturbations"]["lowercase"]["stability_rate"] == 0.5
    assert report["perturbations"]["extra-whitespace"]["stability_rate"] == 1.0
    assert report["clean_accuracy"] == 1.0 and report["min_stability_rate"] == 0.5


def test_integrated_gradients_are_complete_against_a_direct_forward(bundle):
    """Attributions sum to f(x) - f(baseline) for the explained class, checked with separate forward passes."""
    import torch

    from fmkit.audit.explain import Explainer

    explainer = Explainer(bundle, device="cpu", n_steps=300, internal_batch_size=100, batch_size=2)
    texts = ["the film was superb and warm", "dull, tedious plot", "a quite messy story"]
    explanations = explainer.explain(texts)
    tokenizer, model = explainer.tokenizer, explainer.model
    for text, e in zip(texts, explanations):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        special = torch.tensor([[t in tokenizer.all_special_ids for t in ids[0].tolist()]])
        baseline = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id))
        with torch.no_grad():
            target = explainer.labels.index(e.label)
            difference = (model(input_ids=ids).logits[0, target] - model(input_ids=baseline).logits[0, target]).item()
        total = sum(t["attribution"] for t in e.tokens)
        assert total == pytest.approx(difference, abs=2e-3 + 0.01 * abs(difference))
        assert sum(w["attribution"] for w in e.words) == pytest.approx(total, abs=1e-5)
        assert abs(e.convergence_delta) < 2e-3 + 0.01 * abs(difference)


def test_explanations_are_batched_the_same_as_one_by_one(bundle):
    from fmkit.audit.explain import Explainer

    texts = ["the film was superb", "a dull and very tedious plot with a bland cast", "warm"]
    together = Explainer(bundle, device="cpu", n_steps=20, internal_batch_size=7, batch_size=3).explain(texts)
    alone = Explainer(bundle, device="cpu", n_steps=20, internal_batch_size=64, batch_size=1).explain(texts)
    for a, b in zip(together, alone):
        assert [w["word"] for w in a.words] == [w["word"] for w in b.words]
        assert np.allclose([w["attribution"] for w in a.words], [w["attribution"] for w in b.words], atol=1e-4)


def test_audit_run_records_every_check_and_the_card_shows_them(bundle):
    from fmkit.audit.card import render_markdown
    from fmkit.audit.run import AuditConfig, run_audit
    from fmkit.bundle import read_manifest
    from fmkit.bundle.store import verify_bundle

    results = run_audit(bundle, AuditConfig(checks=["counterfactual", "robustness", "explanations", "pii"],
                                            max_rows=40, explain_rows=10, n_steps=8, progress=False),
                        log=lambda line: None)
    manifest = read_manifest(bundle)
    for check in ("counterfactual", "robustness", "explanations", "pii"):
        assert manifest.audits[check]["split"] == "test", check
    faithfulness = results["explanations"]["faithfulness"]
    # the tiny model decides on one sentiment word: deleting the top words must hurt more than random ones
    assert faithfulness["faithfulness_gap"] > 0
    assert results["pii"]["texts_with_pii"] == 0
    assert (bundle / "reports" / "explanations.html").is_file()
    assert verify_bundle(bundle) == []  # reports are outside the content digest
    card = render_markdown(manifest, bundle)
    assert "## Explanations" in card and "## Counterfactual fairness" in card and "## PII in evaluation inputs" in card
    from test_card import manifest_numbers, visible_numbers

    known = manifest_numbers(manifest.model_dump(mode="json"))
    for token in visible_numbers(card):  # every number in the card is one the manifest holds
        decimals = len(token.split(".")[1]) if "." in token else 0
        assert any(abs(float(token) - v) <= 0.5 * 10 ** -decimals + 1e-12 for v in known), token


def test_explaining_an_onnx_bundle_names_the_torch_parent(bundle, tmp_path):
    from fmkit.export.onnx import export_onnx  # noqa: F401  (the export stage exists)

    out = tmp_path / "onnx"
    result = fmkit("export", bundle, "--out", out)
    assert result.returncode == 0, result.stderr
    result = fmkit("explain", out, "a superb film")
    assert result.returncode == 2 and "PyTorch" in result.stderr and str(bundle) in result.stderr


def test_explain_cli_prints_words_and_writes_html(bundle, tmp_path):
    page = tmp_path / "e.html"
    result = fmkit("explain", bundle, "the film was superb", "a tedious plot", "--steps", "8", "--html", page, "--json")
    assert result.returncode == 0, result.stderr
    explanations = json.loads(result.stdout)
    assert len(explanations) == 2 and explanations[0]["words"][0]["word"] == "the"
    assert "<span class='w'" in page.read_text()
    result = fmkit("explain", bundle, "x", "--target", "maybe")
    assert result.returncode == 2 and "'maybe'" in result.stderr and "pos" in result.stderr


def test_audit_cli_rejects_unknown_perturbations_and_missing_groups(bundle):
    result = fmkit("audit", "fairness", bundle)
    assert result.returncode == 2 and "--sensitive" in result.stderr
    result = fmkit("audit", "fairness", bundle, "--sensitive", "gender")
    assert result.returncode == 2 and "'gender'" in result.stderr and "not found" in result.stderr


def test_report_page_has_every_bundle_and_only_manifest_numbers(bundle, tmp_path):
    from fmkit.recipe.report import write_report
    from fmkit.compress import CompressConfig
    from fmkit.compress.stage import run_compress

    run = tmp_path / "run"
    run.mkdir()
    shutil.move(str(bundle), run / "reviews")
    run_compress(run / "reviews", CompressConfig(method="quantize-dynamic", max_accuracy_drop=100,
                                                 measure={"latency_samples": 10, "threads": 1}), run / "int8")
    page, rows = write_report(run, threads=1)
    assert {r["name"] for r in rows} == {"reviews", "int8"}
    assert any(r["pareto"] for r in rows)
    text = page.read_text()
    assert "finetune → quantize-dynamic" in text and (page.parent / "frontier.png").is_file()
    from test_card import manifest_numbers

    known = []
    for name in ("reviews", "int8"):
        known += manifest_numbers(json.loads((run / name / "fmkit.json").read_text()))
    cells = re.findall(r"<td data-sort='[^']*'[^>]*>([^<]*)</td>", text)
    numbers = [c.lstrip("+") for c in cells if re.fullmatch(r"[+-]?\d+(\.\d+)?", c)]
    assert len(numbers) >= 10
    for token in numbers:
        decimals = len(token.split(".")[1]) if "." in token else 0
        tolerance = 0.5 * 10 ** -decimals + 1e-9
        assert any(abs(float(token) - v) <= tolerance or abs(float(token) - v / 1e6) <= tolerance for v in known), token


@needs_chromium
def test_report_renders_and_sorts_in_chromium(bundle, tmp_path):
    from fmkit.recipe.report import write_report

    page_path, _ = write_report(bundle, out=tmp_path / "report", threads=1)
    with headless_page(tmp_path) as page:
        page.goto(page_path.as_uri())
        assert page.locator("#frontier tbody tr").count() == 1
        assert page.locator("img").count() >= 1
        assert page.evaluate("document.querySelector('img').naturalWidth") > 100  # the PNG loaded
        page.click("#frontier th:nth-child(5)")  # sorting runs without a script error
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
