"""The support assistant on the built-in support-faq (issue 16 targets), every number from one command.

    .venv/bin/python bench/assistant.py train --work bench-assistant   # encoder (+ --intent)
    .venv/bin/python bench/assistant.py measure --work bench-assistant # all of it, one run

``train`` splits the 503 questions by question, stratified by category (seed 0: 70% train, 10%
validation for the handoff calibration, 20% held out), and fine-tunes the encoder with
``fmkit finetune --task text-retrieval`` on the train questions only (its defaults; ``--intent``
also fine-tunes the intent classifier on them). Each is its own command so no lock is held for
more than a few minutes; a trained model is reused when it is already there.

``measure`` builds two assistants with ``fmkit assistant build`` (zero-shot MiniLM, and the
fine-tuned encoder), each indexing all 503 answers and calibrated on the validation questions,
and evaluates both on the held-out questions with ``fmkit assistant evaluate``: BM25, zero-shot
MiniLM, the fine-tuned encoder and hybrid (fine-tuned + BM25 by reciprocal-rank fusion) MRR@10 in
the same run, the handoff's precision/coverage at the chosen threshold, and the latency of ``ask``
(one question at a time). ``--int8`` (``fmkit compress --method quantize-dynamic``) or ``--onnx`` (``--method
export-onnx``, fp32, parity-checked) makes a variant of the encoder and of the intent classifier in ``train``, and
``measure`` serves both from it (each bundle on its own runtime), measuring the PyTorch fp32 encoder beside it.
Results: WORK/results[-intent][-int8|-onnx].json; the targets are checked at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import time
from pathlib import Path

SEED = 0
HELD_OUT, VALIDATION = 0.2, 0.1
TARGET_GAIN, TARGET_PRECISION, TARGET_COVERAGE, TARGET_P99_MS = 0.10, 0.90, 0.70, 30.0


def cli(*argv: str, allowed: tuple[int, ...] = (0,)) -> str:
    """Run one fmkit command in this process; its stdout (the --json output) is returned."""
    from fmkit.cli.main import main

    print("$ fmkit " + " ".join(argv), file=sys.stderr, flush=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    if code not in allowed:
        sys.exit(f"fmkit {' '.join(argv)} exited {code}")
    return out.getvalue()


VARIANTS = {"int8": "quantize-dynamic", "onnx": "export-onnx"}  # --int8 / --onnx: WORK/NAME-int8, WORK/NAME-onnx


def variant_of(args) -> str | None:
    if args.int8 and args.onnx:
        sys.exit("--int8 and --onnx: choose one variant to serve")
    return "int8" if args.int8 else "onnx" if args.onnx else None


def compress(bundle: Path, variant: str) -> None:
    """BUNDLE-VARIANT on ONNX Runtime. A variant over the default accuracy budget is still written (marked
    failed, exit 1): the bench serves it anyway and reports its status and its own measured figures."""
    out = bundle.parent / f"{bundle.name}-{variant}"
    if not (out / "fmkit.json").is_file():
        # --json: the text summary fails on an encoder's figures (they have no peak RSS)
        cli("compress", str(bundle), "--method", VARIANTS[variant], "--out", str(out), "--json", allowed=(0, 1))


def compression_status(bundle: Path) -> dict | None:
    manifest = json.loads((bundle / "fmkit.json").read_text(encoding="utf-8"))
    compression = manifest.get("compression")
    if not compression:
        return None
    return {key: compression.get(key) for key in ("method", "status", "accuracy_drop_points", "max_accuracy_drop_points")}


def split(work: Path) -> Path:
    data = work / "data"
    if not (data / "held_out.csv").is_file():
        cli("assistant", "split", "--faq", "support-faq", "--intent-column", "category", "--held-out", str(HELD_OUT),
            "--validation", str(VALIDATION), "--seed", str(SEED), "--out", str(data))
    return data


def train(args) -> None:
    work = Path(args.work)
    data = split(work)
    started = time.perf_counter()
    if not (work / "encoder" / "fmkit.json").is_file():
        # the validation/test fractions of the encoder's own split come from train.csv: the held-out file stays unseen
        cli("finetune", "--task", "text-retrieval", "--model", "minilm", "--data", str(data / "train.csv"),
            "--query-column", "q", "--document-column", "a", "--no-progress", *shlex.split(args.encoder_args),
            "--out", str(work / "encoder"))
    if args.intent and not (work / "intents" / "fmkit.json").is_file():
        cli("finetune", "--model", "minilm", "--data", str(data / "train.csv"), "--text-column", "q",
            "--label-column", "category", "--no-progress", "--out", str(work / "intents"))
    variant = variant_of(args)
    if variant:
        compress(work / "encoder", variant)
        if args.intent:
            compress(work / "intents", variant)
    print(f"trained in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def build_and_evaluate(work: Path, data: Path, name: str, encoder: str, intents: Path | None) -> dict:
    out = work / "assistants" / name
    flags = ["--intent-column", "category", "--intent-bundle", str(intents)] if intents else []
    cli("assistant", "build", "--encoder", encoder, "--faq", "support-faq", "--question-column", "q",
        "--answer-column", "a", "--validation-data", str(data / "validation.csv"), *flags, "--out", str(out),
        "--overwrite", "--json")
    return json.loads(cli("assistant", "evaluate", str(out), "--data", str(data / "held_out.csv"), "--json"))


def measure(args) -> None:
    work = Path(args.work)
    data = split(work)
    variant = variant_of(args)

    def served(name: str) -> Path:  # the --int8/--onnx variant, when train made it
        made = variant and (work / f"{name}-{variant}" / "fmkit.json").is_file()
        return work / (f"{name}-{variant}" if made else name)

    encoder = served("encoder")
    if not (encoder / "fmkit.json").is_file():
        sys.exit(f"{encoder} is missing: run `bench/assistant.py train --work {work}` first")
    intents = served("intents") if args.intent and (work / "intents" / "fmkit.json").is_file() else None
    started = time.perf_counter()
    zero_shot = build_and_evaluate(work, data, "zero-shot", "minilm", None)
    tuned = build_and_evaluate(work, data, "fine-tuned", str(encoder), intents)
    # the fp32 encoder alone too when the assistant serves a variant: what quantizing cost on these questions
    fp32 = (build_and_evaluate(work, data, "fine-tuned-fp32", str(work / "encoder"), None)
            if encoder != work / "encoder" else None)
    ways = tuned["ways"]
    mrr = {"bm25": ways["bm25"]["mrr@10"], "zero-shot minilm": zero_shot["ways"]["dense"]["mrr@10"],
           "fine-tuned": ways["dense"]["mrr@10"], "hybrid (fine-tuned + bm25)": ways["hybrid"]["mrr@10"],
           "hybrid (zero-shot + bm25)": zero_shot["ways"]["hybrid"]["mrr@10"]}
    if "dense+intent" in ways:
        mrr["fine-tuned + intent routing"] = ways["dense+intent"]["mrr@10"]
    if fp32 is not None:
        mrr["fine-tuned fp32 (not served)"] = fp32["ways"]["dense"]["mrr@10"]
    best_baseline = max(mrr["bm25"], mrr["zero-shot minilm"])
    answered = 1 - tuned["handoff_rate"]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "bench/assistant.py " + " ".join(sys.argv[1:]),
        "held_out_questions": tuned["questions"], "index_entries": 503,
        "mrr@10": mrr,
        "recall": {name: {k: result["ways"][way][k] for k in ("recall@1", "recall@5", "recall@10")}
                   for name, result, way in (("bm25", tuned, "bm25"), ("zero-shot minilm", zero_shot, "dense"),
                                             ("fine-tuned", tuned, "dense"), ("hybrid", tuned, "hybrid"))},
        "assistant": {key: tuned[key] for key in ("retrieval", "mrr@10", "recall@1", "recall@5", "handoff_rate",
                                                  "accuracy_answered", "threshold", "latency_ms")},
        "zero_shot_assistant": {key: zero_shot[key] for key in ("retrieval", "mrr@10", "handoff_rate",
                                                                "accuracy_answered", "latency_ms")},
        "encoder": str(encoder), "intents": str(intents) if intents else None,
        "compression": {"encoder": compression_status(encoder),
                        "intents": compression_status(intents) if intents else None},
        "fp32_assistant": None if fp32 is None else {
            key: fp32[key] for key in ("retrieval", "mrr@10", "recall@1", "handoff_rate", "accuracy_answered",
                                       "latency_ms")},
        "targets": {
            "fine-tuned MRR@10 - best of BM25/zero-shot >= 0.10": round(mrr["fine-tuned"] - best_baseline, 4),
            "precision of answered >= 0.90": tuned["accuracy_answered"],
            "answered >= 0.70": answered,
            "ask p99 <= 30 ms": tuned["latency_ms"]["p99"],
        },
        "met": {"gain": mrr["fine-tuned"] - best_baseline >= TARGET_GAIN,
                "precision": (tuned["accuracy_answered"] or 0) >= TARGET_PRECISION,
                "coverage": answered >= TARGET_COVERAGE,
                "latency": tuned["latency_ms"]["p99"] <= TARGET_P99_MS},
        "seconds": round(time.perf_counter() - started, 1),
    }
    name = "results" + ("-intent" if intents else "") + (f"-{variant}" if encoder != work / "encoder" else "")
    (work / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("train", "measure"))
    parser.add_argument("--work", default="bench-assistant", help="folder for the data, models and results")
    parser.add_argument("--intent", action="store_true", help="fine-tune and use the intent classifier too")
    parser.add_argument("--encoder-args", default="", help="extra `fmkit finetune` flags for the encoder, e.g. "
                        "'--document-queries --symmetric' (train removes nothing: delete WORK/encoder to retrain)")
    parser.add_argument("--int8", action="store_true", help="quantize the encoder (and the intent classifier) to "
                        "INT8 ONNX (quantize-dynamic) and serve from them")
    parser.add_argument("--onnx", action="store_true", help="export the encoder (and the intent classifier) to fp32 "
                        "ONNX (export-onnx) and serve from them")
    args = parser.parse_args()
    train(args) if args.step == "train" else measure(args)


if __name__ == "__main__":
    main()
