"""``fmkit assistant build``: FAQ + encoder (+ intents, documents) -> a measured, calibrated assistant.

The retrieval (dense, BM25 or their fusion; routed by intent or not) is chosen by its MRR@10 on the
calibration questions, each way measured and recorded; the handoff threshold is chosen on
out-of-fold confidences, so the questions that pick it are not the ones the calibrator fitted.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from fmkit.apps.assistant.config import BuildConfig
from fmkit.apps.assistant.faq import Faq, normalize, read_faq
from fmkit.errors import BadInputError

CALIBRATION_FOLDS = 5


def faq_entries(faq: Faq) -> list[dict]:
    """One index entry per distinct answer, with every question it answers (the index holds every answer)."""
    entries: list[dict] = []
    by_answer: dict[str, dict] = {}
    for row, answer in enumerate(faq.answers):
        entry = by_answer.get(normalize(answer))
        if entry is None:
            entry = {"id": faq.ids[row], "text": answer, "kind": "faq", "source": f"faq:{faq.ids[row]}",
                     "category": faq.categories[row] if faq.categories else None, "questions": []}
            by_answer[normalize(answer)] = entry
            entries.append(entry)
        entry["questions"].append(faq.questions[row])
    return entries


def gold_entries(entries: list[dict], answers: list[str]) -> np.ndarray:
    """The entry index holding each answer, -1 where no entry holds it."""
    position = {normalize(entry["text"]): index for index, entry in enumerate(entries) if entry["kind"] == "faq"}
    return np.array([position.get(normalize(answer), -1) for answer in answers], dtype=np.int64)


def ranks_of(rankings, gold: np.ndarray) -> np.ndarray:
    """1-based rank of the right entry in each ranking, 0 when it is not there."""
    ranks = np.zeros(len(gold), dtype=np.int64)
    for row, (ranking, right) in enumerate(zip(rankings, gold)):
        hits = np.flatnonzero(ranking.indices == right)
        ranks[row] = hits[0] + 1 if len(hits) else 0
    return ranks


def measure_ways(retriever, questions: list[str], gold: np.ndarray, routes: tuple[bool, ...], encoded=None) -> dict:
    """Ranking metrics for every retrieval way: {"dense": m, "dense+intent": m, ...}."""
    from fmkit.apps.assistant.confidence import ranking_metrics

    measured = {}
    encoded = encoded if encoded is not None else retriever.encode(questions)
    for mode in ("dense", "bm25", "hybrid"):
        for route in routes:
            measured[mode + ("+intent" if route else "")] = ranking_metrics(
                ranks_of(retriever.rank(questions, mode, route, encoded), gold))
    return measured


def out_of_fold_confidence(rows: np.ndarray, correct: np.ndarray, seed: int) -> np.ndarray:
    from fmkit.apps.assistant.confidence import Calibrator

    folds = np.random.default_rng(seed).permutation(len(rows)) % CALIBRATION_FOLDS
    confidence = np.zeros(len(rows))
    for fold in range(CALIBRATION_FOLDS):
        held = folds == fold
        if held.any() and (~held).any():
            confidence[held] = Calibrator.fit(rows[~held], correct[~held], seed)(rows[held])
    return confidence


def encoder_held_out(encoder: str, faq: Faq) -> tuple[list[str], list[str]]:
    """The FAQ questions a fine-tuned encoder held out of its training (its validation and test
    split), with their answers; empty for a base model or a bundle whose training data is gone."""
    from fmkit.bundle import is_bundle

    if not is_bundle(Path(encoder)):
        return [], []
    from fmkit.retrieval.data import held_out_queries

    try:
        held = held_out_queries(encoder)
    except (BadInputError, OSError) as error:
        warnings.warn(f"{encoder}: its held-out questions cannot be read back ({error}); they are not used for "
                      "the calibration", stacklevel=3)
        return [], []
    answers_of: dict[str, list[str]] = {}
    for question, answer in zip(faq.questions, faq.answers):
        answers_of.setdefault(normalize(question), []).append(answer)
    pairs = [(q, a) for q in held["validation"] + held["test"] for a in answers_of.get(normalize(q), [])[:1]]
    return [q for q, _ in pairs], [a for _, a in pairs]


def calibration_questions(cfg: BuildConfig, faq: Faq, has_intent: bool) -> tuple[list[str], list[str], str]:
    """(questions, their answers, where they came from): --validation-data and the questions the
    fine-tuned encoder held out; the FAQ's own questions (with a warning) when there are neither."""
    questions, answers, sources = [], [], []
    if cfg.validation_data:
        validation = read_faq(cfg.validation_data, cfg.question_column, cfg.answer_column)
        questions, answers = list(validation.questions), list(validation.answers)
        sources.append(f"{cfg.validation_data} ({len(questions)})")
    held_questions, held_answers = encoder_held_out(cfg.encoder, faq)
    seen = {normalize(q) for q in questions}
    extra = [(q, a) for q, a in zip(held_questions, held_answers) if normalize(q) not in seen]
    if extra:
        questions += [q for q, _ in extra]
        answers += [a for _, a in extra]
        sources.append(f"the encoder's held-out questions ({len(extra)})")
    if questions:
        return questions, answers, " + ".join(sources)
    from fmkit.bundle import is_bundle

    if is_bundle(Path(cfg.encoder)) or has_intent:
        warnings.warn("the handoff is calibrated on the FAQ's own questions, which the fine-tuned encoder/intent "
                      "bundle may have trained on: the threshold is optimistic. Pass --validation-data with "
                      "held-out questions (fmkit assistant split writes them)", stacklevel=3)
    return list(faq.questions), list(faq.answers), "the FAQ's own questions"


def without_intent_training(intent, questions: list[str], answers: list[str], source: str):
    """Leave out calibration questions the intent classifier trained on: its probabilities on them are
    optimistic, and the routing and threshold would be chosen on them."""
    trained = intent.trained_questions()
    if trained is None:
        warnings.warn(f"{intent.path}: its training data cannot be read back, so calibration questions it trained "
                      "on cannot be left out; the routing choice and threshold may be optimistic", stacklevel=3)
        return questions, answers, source
    keep = [row for row, question in enumerate(questions) if normalize(question) not in trained]
    if len(keep) == len(questions):
        return questions, answers, source
    return ([questions[r] for r in keep], [answers[r] for r in keep],
            f"{source}, less {len(questions) - len(keep)} the intent classifier trained on")


def build_assistant(cfg: BuildConfig, out: Path, *, overwrite: bool = False, log=print) -> dict:
    """Build the assistant directory ``out`` (atomically); returns its manifest."""
    from fmkit.apps.assistant.confidence import Calibrator, choose_threshold, coverage_precision, features
    from fmkit.apps.assistant.retrieve import Retriever
    from fmkit.apps.assistant.store import EMBEDDINGS, ENCODER_DIR, ENTRIES, INTENT_DIR, SCHEMA, write_manifest
    from fmkit.bundle import is_bundle
    from fmkit.fileio import atomic_directory, write_json_atomic
    from fmkit.retrieval import load_encoder

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not overwrite:
        raise BadInputError(f"{out} already exists; choose another --out or pass --overwrite")
    faq = read_faq(cfg.faq, cfg.question_column, cfg.answer_column, intent_column=cfg.intent_column,
                   id_column=cfg.id_column)
    entries = faq_entries(faq)
    chunks = []
    if cfg.documents:
        from fmkit.apps.assistant.documents import read_documents

        chunks = read_documents(cfg.documents, cfg.chunk_chars)
        entries += [{"id": c.id, "text": c.text, "kind": "document", "source": c.source, "category": None,
                     "questions": []} for c in chunks]
    encoder = load_encoder(cfg.encoder, runtime=cfg.runtime)
    intent = None
    if cfg.intent_bundle:
        from fmkit.apps.assistant.intent import IntentModel

        intent = IntentModel(Path(cfg.intent_bundle))
        intent.require_categories(set(faq.categories or ()))
    log(f"encoding {len(entries)} entries ({len(entries) - len(chunks)} answers, {len(chunks)} passages) "
        f"with {encoder.name} ({encoder.runtime})")
    embeddings = encoder.encode([entry["text"] for entry in entries])
    retriever = Retriever(entries, embeddings, encoder, intent, ann_threshold=cfg.ann_threshold, seed=cfg.seed,
                          intent_mass=cfg.intent_mass)

    questions, answers, calibration_source = calibration_questions(cfg, faq, intent is not None)
    if intent is not None:
        questions, answers, calibration_source = without_intent_training(intent, questions, answers,
                                                                         calibration_source)
    gold = gold_entries(entries, answers)
    if (gold < 0).any():
        warnings.warn(f"{int((gold < 0).sum())} calibration question(s) have an answer that is not in the FAQ; "
                      "they are left out of the calibration", stacklevel=2)
    questions = [q for q, g in zip(questions, gold) if g >= 0]
    gold = gold[gold >= 0]
    if len(questions) < 10:
        raise BadInputError(f"only {len(questions)} calibration question(s) have their answer in the FAQ; the "
                            "handoff needs at least 10 (pass --validation-data with questions whose answers are in "
                            "the FAQ)")
    routes = (False, True) if intent is not None else (False,)
    encoded = retriever.encode(questions)
    measured = measure_ways(retriever, questions, gold, routes, encoded)
    if cfg.retrieval == "auto":
        way = max(measured, key=lambda name: measured[name]["mrr@10"])
    else:
        way = max((name for name in measured if name.split("+")[0] == cfg.retrieval),
                  key=lambda name: measured[name]["mrr@10"])
    mode, route = way.split("+")[0], way.endswith("+intent")
    log("retrieval on the calibration questions: " + ", ".join(f"{name} {m['mrr@10']:.3f}"
                                                              for name, m in measured.items()) + f" -> {way}")
    rankings = retriever.rank(questions, mode, route, encoded)
    rows = np.stack([features(ranking) for ranking in rankings])
    correct = np.array([len(r.indices) > 0 and r.indices[0] == g for r, g in zip(rankings, gold)])
    held_out_confidence = out_of_fold_confidence(rows, correct, cfg.seed)
    handoff = choose_threshold(held_out_confidence, correct, cfg.target_precision)
    calibrator = Calibrator.fit(rows, correct, cfg.seed)
    log(f"handoff threshold {handoff['threshold']:.3f}: answers {handoff['coverage']:.0%} of the calibration "
        f"questions at precision {handoff['precision'] or 0:.3f} (target {cfg.target_precision})")

    encoder_bundle = is_bundle(Path(cfg.encoder))
    manifest = {
        "schema_version": SCHEMA, "kind": "fmkit-assistant", "fmkit_version": _version(),
        "name": cfg.name or out.name, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": cfg.model_dump(mode="json"),
        "encoder": {"name": cfg.encoder, "digest": encoder.digest, "runtime": encoder.runtime,
                    "dimension": int(embeddings.shape[1]),
                    "location": ENCODER_DIR if encoder_bundle else str(_base_reference(cfg.encoder))},
        "faq": faq.summary(),
        "documents": {"folder": cfg.documents, "files": len({c.source.split('#')[0] for c in chunks}),
                      "chunks": len(chunks)},
        "intent": None if intent is None else {"bundle": str(cfg.intent_bundle), "location": INTENT_DIR,
                                               "digest": intent.digest, "labels": intent.labels,
                                               "test_accuracy": intent.accuracy},
        "index": {"entries": len(entries), "search": retriever.dense.kind, "ann_threshold": cfg.ann_threshold},
        "retrieval": {"mode": mode, "route_by_intent": route, "chosen_by": "mrr@10 on the calibration questions",
                      "calibration_metrics": measured},
        "handoff": {**handoff, "target_precision": cfg.target_precision, "calibration_questions": len(questions),
                    "calibration_source": calibration_source, "calibrator": calibrator.as_dict(),
                    "curve": coverage_precision(held_out_confidence, correct)},
        "max_question_chars": cfg.max_question_chars,
        "build_seconds": None,
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        (tmp / "index").mkdir()
        np.save(tmp / EMBEDDINGS, embeddings.astype(np.float32), allow_pickle=False)
        write_json_atomic(tmp / ENTRIES, entries)
        if encoder_bundle:
            shutil.copytree(cfg.encoder, tmp / ENCODER_DIR, ignore=shutil.ignore_patterns("reports"))
        if intent is not None:
            shutil.copytree(cfg.intent_bundle, tmp / INTENT_DIR, ignore=shutil.ignore_patterns("reports"))
        manifest["build_seconds"] = round(time.perf_counter() - started, 2)
        write_manifest(tmp, manifest)
    log(f"assistant {manifest['name']!r} written to {out} ({len(entries)} entries, {manifest['build_seconds']} s)")
    return manifest


def _base_reference(encoder: str) -> str:
    """A built-in name stays a name; a local base folder is kept by its absolute path."""
    path = Path(encoder).expanduser()
    return str(path.resolve()) if path.is_dir() else encoder


def _version() -> str:
    from fmkit._version import __version__

    return __version__
