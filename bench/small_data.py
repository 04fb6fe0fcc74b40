"""Small real data sets with fmkit's defaults only (issue 15 targets): does fine-tuning beat the baseline?

    .venv/bin/python bench/small_data.py run --set faq --work bench-small          # one set, every method
    .venv/bin/python bench/small_data.py run --set rt-1000 --methods full           # one method
    .venv/bin/python bench/small_data.py table --work bench-small                   # the Markdown table

Sets, built from files that ship with the packages (never a download) and written to WORK/data/:
- ``faq``: the support FAQ's 503 questions in 39 categories (zaragoza-construction-faq, fmkit's
  built-in ``support-faq``); scored on fmkit's own stratified test split (10% of each class, ~56
  questions: a small test, so a few points either way is noise).
- ``rt-200`` / ``rt-1000``: stratified Rotten Tomatoes samples; ``adult-1000``: UCI Adult as text
  (fmkit's built-in rendering, sex and race left out). Each is scored on a separate, disjoint
  1,000-row test file (``fmkit evaluate BUNDLE --data test.csv --split all``), so the comparison is
  not decided by a 20-row test split.
- ``fmnist-1000``: 1,000 Fashion-MNIST training images (100 per class) as .npz, scored on 1,000 of
  the official t10k images the same way.
- ``rt-2300``: 2,875 Rotten Tomatoes rows (2,300 training rows after the split): the time target.

Methods, each with defaults only: ``full`` (``fmkit finetune``), ``lora`` (``--method lora``; text),
``frozen`` (the baseline ``fmkit evaluate`` reports for the full bundle: logistic regression on the
frozen base model's features, fitted on the same training rows, scored on the same test rows),
``tfidf`` (TF-IDF word 1-2 grams + logistic regression, C picked on the same validation rows; text)
and ``pixels`` (logistic regression on raw pixels; images), ``frozen-efficientnet`` (the same baseline on
ImageNet EfficientNet-Lite0 features at its 224 px default; images: the default ``model: auto`` trains
EfficientNet-Lite0 at 64 px below 10,000 training images, so ``frozen`` is its probe at 64 px).
Results go to WORK/results/SET.json,
one file per set, merged with what earlier commands of the same set wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SEED = 0
EXTERNAL_TEST_ROWS = 1000
SETS = {  # name -> (kind, training rows, external test rows or None)
    "faq": ("faq", None, None),
    "rt-200": ("rotten-tomatoes", 200, EXTERNAL_TEST_ROWS),
    "rt-1000": ("rotten-tomatoes", 1000, EXTERNAL_TEST_ROWS),
    "adult-1000": ("adult", 1000, EXTERNAL_TEST_ROWS),
    "fmnist-1000": ("fashion-mnist", 1000, EXTERNAL_TEST_ROWS),
    "rt-2300": ("rotten-tomatoes", 2875, None),
}
TEXT_METHODS = ("full", "lora", "frozen", "tfidf")
IMAGE_METHODS = ("full", "frozen", "pixels", "frozen-efficientnet")


# -- the sets ---------------------------------------------------------------------------------------

def stratified(frame, size: int, seed: int):
    """A class-proportional sample of ``size`` rows of a pandas frame with a ``label`` column."""
    fraction = size / len(frame)
    parts = [group.sample(n=max(1, round(len(group) * fraction)), random_state=seed)
             for _, group in frame.groupby("label", sort=True)]
    import pandas as pd

    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def builtin_table(name: str):
    from fmkit.data.builtin import BUILTIN_DATASETS

    frame = BUILTIN_DATASETS.get(name).load()[["text", "label"]]
    return frame.drop_duplicates("text", keep=False).reset_index(drop=True)  # a text never in two places


def build_set(name: str, folder: Path, rows: int | None = None, test_rows: int | None = None) -> dict:
    """Write the set's training file (and external test file) under ``folder``; return their paths.
    ``rows``/``test_rows`` shrink it (a smoke test of this script, never a recorded figure)."""
    kind, default_rows, default_test_rows = SETS[name]
    rows, test_rows = rows or default_rows, (test_rows or default_test_rows) if default_test_rows else None
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "fashion-mnist":
        return build_images(folder, rows, test_rows)
    if kind == "faq":  # fmkit's built-in support-faq: text = the question, label = its category
        return {"train": "support-faq", "test": None}
    frame = builtin_table(kind)
    train = stratified(frame, rows, SEED)
    train.to_csv(folder / "train.csv", index=False)
    paths = {"train": str(folder / "train.csv"), "test": None}
    if test_rows:
        rest = frame[~frame["text"].isin(set(train["text"]))]
        stratified(rest, test_rows, SEED + 1).to_csv(folder / "test.csv", index=False)
        paths["test"] = str(folder / "test.csv")
    return paths


def build_images(folder: Path, rows: int, test_rows: int) -> dict:
    import numpy as np

    from fmkit.data.images.builtin import FASHION_MNIST_DIR
    from fmkit.data.images.idx import read_idx

    def sample(prefix: str, count: int, seed: int):
        images = read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), count // 10, replace=False) for c in range(10)])
        keep = rng.permutation(keep)
        return images[keep], labels[keep]

    for split, prefix, count, seed in (("train", "train", rows, SEED), ("test", "t10k", test_rows, SEED + 1)):
        images, labels = sample(prefix, count, seed)
        np.savez(folder / f"{split}.npz", images=images, labels=labels)
    return {"train": str(folder / "train.npz"), "test": str(folder / "test.npz")}


# -- the methods ------------------------------------------------------------------------------------

def fmkit(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fmkit", *args]
    print("$ fmkit " + " ".join(args), file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    sys.stderr.write(result.stderr[-4000:])
    if result.returncode != 0:
        raise SystemExit(f"fmkit {args[0]} failed (exit {result.returncode})")
    return result


def finetune(paths: dict, out: Path, extra: list[str]) -> dict:
    """``fmkit finetune`` with defaults only (plus ``extra``: --method lora), timed; the bundle's test figures."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    fmkit("finetune", "--data", paths["train"], "--out", str(out), "--no-progress", *extra)
    wall = time.perf_counter() - started
    manifest = json.loads((out / "fmkit.json").read_text())
    test = scored(out, paths, baseline=False)
    training = manifest["training"]
    return {"command": " ".join(["fmkit", "finetune", "--data", paths["train"], "--out", str(out), *extra]),
            "accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "test_rows": test["count"],
            "wall_seconds": round(wall, 1), "steps": training.get("steps"),
            "epochs_completed": training.get("epochs_completed"), "schedule": training.get("schedule"),
            "learning_rate": training.get("learning_rate", manifest["lineage"][-1]["config"]["train"]["learning_rate"]),
            "class_weights": training.get("class_weights"), "status": training.get("status", "ok"),
            "head": training.get("head"), "split_sizes": manifest["data"].get("split_sizes"),
            "model_choice": training.get("model_choice"), "architecture": training.get("architecture"),
            "input_size": training.get("input_size"),
            "recorded_baseline": training.get("baseline")}


def scored(bundle: Path, paths: dict, *, baseline: bool) -> dict:
    """The bundle's metrics on the set's test rows: the external test file, else its own test split."""
    args = ["evaluate", str(bundle), "--json", "--no-record"]
    args += ["--data", paths["test"], "--split", "all"] if paths["test"] else ["--split", "test"]
    return json.loads(fmkit(*args, *([] if baseline else ["--no-baseline"])).stdout)


def frozen(bundle: Path, paths: dict) -> dict:
    """The baseline exactly as ``fmkit evaluate`` reports it for the full bundle, on the set's test rows."""
    started = time.perf_counter()
    metrics = scored(bundle, paths, baseline=True)
    found = metrics.get("baseline")
    if not found:
        raise SystemExit(f"fmkit evaluate {bundle} reported no baseline")
    return {"accuracy": found["accuracy"], "macro_f1": found["macro_f1"], "test_rows": found["count"],
            "encoder": found["encoder"], "C": found["C"], "train_rows": found["train_rows"],
            "measured": found.get("measured"), "wall_seconds": round(time.perf_counter() - started, 1)}


def frozen_efficientnet(paths: dict) -> dict:
    """fmkit's baseline with ImageNet EfficientNet-Lite0 as the frozen base, on the same rows as the others."""
    from fmkit.evaluate.baseline import fit_probe
    from fmkit.finetune.images.config import ImageFinetuneConfig
    from fmkit.tasks import TASKS

    started = time.perf_counter()
    training, test, test_rows = split_data(paths, image=True)
    cfg = ImageFinetuneConfig(model="efficientnet-lite0", data={"source": paths["train"]})
    task = TASKS.get("image-classification")
    label2id = {label: i for i, label in enumerate(training.label_names)}
    fit_rows = {name: list(training.splits[name]) for name in ("train", "validation")}
    encoder, features = task.frozen_features(cfg, training, fit_rows)
    features["test"] = task.frozen_features(cfg, test, {"test": test_rows})[1]["test"]
    ids = {name: [label2id[training.labels[i]] for i in rows] for name, rows in fit_rows.items()}
    scores = fit_probe(features["train"], ids["train"], {
        "validation": (features["validation"], ids["validation"]),
        "test": (features["test"], [label2id[test.labels[i]] for i in test_rows])}, training.label_names)
    return {"accuracy": scores["test"]["accuracy"], "macro_f1": scores["test"]["macro_f1"],
            "test_rows": scores["test"]["count"], "encoder": encoder, "C": scores["C"],
            "train_rows": len(fit_rows["train"]), "wall_seconds": round(time.perf_counter() - started, 1)}


def split_data(paths: dict, image: bool):
    """(training data with fmkit's default split, test data, test rows): the rows every method uses."""
    from fmkit.tasks import TASKS

    task = TASKS.get("image-classification" if image else "text-classification")
    if image:
        from fmkit.data.images import ImageDataConfig as Config
    else:
        from fmkit.data.config import DataConfig as Config
    training = task.load_data(Config(source=paths["train"]))
    if paths["test"] is None:
        return training, training, list(training.splits["test"])
    test = task.load_data(Config(source=paths["test"]))
    return training, test, list(range(len(test.labels)))


def classical(paths: dict, image: bool) -> dict:
    """TF-IDF (text) or raw-pixel (images) logistic regression on the same train/validation/test rows."""
    import numpy as np

    from fmkit.evaluate.baseline import REGULARISATION
    from fmkit.evaluate.metrics import StreamingClassificationMetrics

    started = time.perf_counter()
    training, test, test_rows = split_data(paths, image)
    names = training.label_names
    label2id = {label: i for i, label in enumerate(names)}

    def inputs(data, rows):
        return (data.images[rows].reshape(len(rows), -1).astype(np.float32) / 255.0 if image
                else [data.texts[i] for i in rows])

    def labels(data, rows):
        return np.asarray([label2id[data.labels[i]] for i in rows])

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if image:
        from sklearn.preprocessing import StandardScaler as Features

        make_features = lambda: Features()  # noqa: E731
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        make_features = lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)  # noqa: E731
    train_rows, validation_rows = training.splits["train"], training.splits["validation"]

    def fit(strength):
        return make_pipeline(make_features(), LogisticRegression(C=strength, max_iter=2000)).fit(
            inputs(training, train_rows), labels(training, train_rows))

    def score(model, data, rows):
        probabilities = np.zeros((len(rows), len(names)))
        probabilities[:, model.classes_] = model.predict_proba(inputs(data, rows))
        metrics = StreamingClassificationMetrics(names)
        metrics.update(probabilities, labels(data, rows))
        return metrics.compute()

    fitted = {c: fit(c) for c in REGULARISATION}
    best = max(fitted, key=lambda c: score(fitted[c], training, validation_rows)["accuracy"])
    result = score(fitted[best], test, test_rows)
    return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "test_rows": result["count"], "C": best,
            "train_rows": len(train_rows), "wall_seconds": round(time.perf_counter() - started, 1)}


def run(args) -> int:
    work = Path(args.work)
    image = SETS[args.set][0] == "fashion-mnist"
    methods = args.methods.split(",") if args.methods else (IMAGE_METHODS if image else TEXT_METHODS)
    unknown = set(methods) - set(IMAGE_METHODS if image else TEXT_METHODS)
    if unknown:
        raise SystemExit(f"methods {sorted(unknown)} do not apply to {args.set}")
    paths = build_set(args.set, work / "data" / args.set, args.rows, args.test_rows)
    results_file = work / "results" / f"{args.set}.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {"set": args.set, "methods": {}}
    results.update({"paths": paths, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "cpus": os.cpu_count(), "smoke": bool(args.rows or args.test_rows or args.extra)})
    bundles = work / "bundles" / args.set
    for method in methods:
        if method in ("full", "lora"):
            extra = (["--method", "lora"] if method == "lora" else []) + (args.extra.split() if args.extra else [])
            figures = finetune(paths, bundles / method, extra)
        elif method == "frozen-efficientnet":
            figures = frozen_efficientnet(paths)
        elif method == "frozen":
            if not (bundles / "full" / "fmkit.json").is_file():
                raise SystemExit("the frozen baseline is read from the full bundle: run --methods full first")
            figures = frozen(bundles / "full", paths)
        else:
            figures = classical(paths, image)
        results["methods"][method] = figures
        print(json.dumps({"set": args.set, "method": method, **{k: figures[k] for k in
                          ("accuracy", "macro_f1", "test_rows", "wall_seconds")}}), flush=True)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results, indent=2))
    return 0


def table(args) -> int:
    """One Markdown row per set: accuracy / macro-F1 per method, the gains and the wall times."""
    order = ("full", "lora", "frozen", "tfidf", "pixels", "frozen-efficientnet")
    header = ["set", "train/val/test rows"] + [f"{m} acc / F1" for m in order] + ["full − frozen (pts)",
                                                                                  "lora − full (pts)", "full wall s",
                                                                                  "lora wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    gains = []
    for path in sorted((Path(args.work) / "results").glob("*.json")):
        result = json.loads(path.read_text())
        methods = result["methods"]
        full = methods.get("full", {})
        sizes = full.get("split_sizes") or {}
        test_rows = full.get("test_rows") or next((m.get("test_rows") for m in methods.values()), "?")
        cells = [result["set"], f"{sizes.get('train', '?')}/{sizes.get('validation', '?')}/{test_rows}"]
        for method in order:
            m = methods.get(method)
            cells.append(f"{m['accuracy']:.4f} / {m['macro_f1']:.4f}" if m else "–")

        def points(a, b):
            if a in methods and b in methods:
                return 100 * (methods[a]["accuracy"] - methods[b]["accuracy"])
            return None

        gain, lora = points("full", "frozen"), points("lora", "full")
        if gain is not None:
            gains.append(gain)
        cells += [f"{gain:+.2f}" if gain is not None else "–", f"{lora:+.2f}" if lora is not None else "–",
                  str(full.get("wall_seconds", "–")), str(methods.get("lora", {}).get("wall_seconds", "–"))]
        lines.append("| " + " | ".join(cells) + " |")
    if gains:
        lines.append(f"\nmean full − frozen: {sum(gains) / len(gains):+.2f} points over {len(gains)} sets; "
                     f"smallest {min(gains):+.2f}")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="build one set and run its methods")
    runner.add_argument("--set", choices=sorted(SETS), required=True)
    runner.add_argument("--methods", help=f"comma-separated (default text: {','.join(TEXT_METHODS)}; images: "
                                          f"{','.join(IMAGE_METHODS)}); frozen reads the full bundle")
    runner.add_argument("--work", default="bench-small", help="folder for data, bundles and results")
    runner.add_argument("--rows", type=int, help="smoke test only: fewer training rows than the set defines")
    runner.add_argument("--test-rows", type=int, help="smoke test only: fewer external test rows")
    runner.add_argument("--extra", help="smoke test only: finetune flags, e.g. '--max-steps 5' (a recorded run "
                                        "passes none: defaults only)")
    shower = commands.add_parser("table", help="print the Markdown table of every result in WORK/results")
    shower.add_argument("--work", default="bench-small")
    args = parser.parse_args()
    return run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    sys.exit(main())
