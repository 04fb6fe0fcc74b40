"""An assistant opened for questions: ``Assistant.open(path).ask("how long does a roof take?")``.

The answer is the approved FAQ answer (or passage) ranked first, given only when the calibrated
confidence reaches the threshold chosen at build time; below it ``handoff`` is true and the
customer is passed to a person with ``handoff_message``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError

HANDOFF_MESSAGE = "I am not sure I have the right answer to that, so I am passing you to a colleague who can help."
DEFAULT_TOP_K = 5


class Assistant:
    def __init__(self, path: Path, manifest: dict, retriever, calibrator):
        self.path = Path(path)
        self.manifest = manifest
        self.retriever = retriever
        self.calibrator = calibrator
        self.name = manifest["name"]
        self.max_question_chars = int(manifest["max_question_chars"])
        self.threshold = float(manifest["handoff"]["threshold"])
        self.mode = manifest["retrieval"]["mode"]
        self.route = bool(manifest["retrieval"]["route_by_intent"])

    @classmethod
    def open(cls, path, *, runtime: str = "auto", threads: int | None = None) -> "Assistant":
        """Verify the directory (digests + seal), then load its encoder, intent model and index."""
        from fmkit.apps.assistant.confidence import Calibrator
        from fmkit.apps.assistant.retrieve import Retriever
        from fmkit.apps.assistant.store import EMBEDDINGS, ENTRIES, open_manifest
        from fmkit.retrieval import load_encoder

        path = Path(path)
        manifest = open_manifest(path)
        encoder_info = manifest["encoder"]
        location = encoder_info["location"]
        source = path / location if (path / location).is_dir() and not Path(location).is_absolute() else location
        encoder = load_encoder(source, runtime=runtime, threads=threads)
        if encoder.digest != encoder_info["digest"]:
            raise BadInputError(f"{path}: its encoder {encoder_info['name']} is not the one the index was built with "
                                f"(digest {encoder.digest[:19]} != {encoder_info['digest'][:19]}); rebuild the assistant")
        intent = None
        if manifest.get("intent"):
            from fmkit.apps.assistant.intent import IntentModel

            intent = IntentModel(path / manifest["intent"]["location"],
                                 runtime_options={"threads": threads} if threads else None)
        embeddings = np.load(path / EMBEDDINGS, allow_pickle=False)
        entries = json.loads((path / ENTRIES).read_text(encoding="utf-8"))
        if not entries or len(entries) != len(embeddings):
            raise BadInputError(f"{path}: its index is empty or does not match its entries; rebuild the assistant")
        config = manifest["config"]
        retriever = Retriever(entries, embeddings, encoder, intent, ann_threshold=config["ann_threshold"],
                              seed=config["seed"], intent_mass=config["intent_mass"])
        return cls(path, manifest, retriever, Calibrator.from_dict(manifest["handoff"]["calibrator"]))

    # -- questions --------------------------------------------------------------------------
    def check_question(self, question) -> str:
        if not isinstance(question, str):
            raise BadInputError(f"a question must be a string, got {type(question).__name__}")
        question = question.strip()
        if not question:
            raise BadInputError("the question is empty; ask something")
        if len(question) > self.max_question_chars:
            raise BadInputError(f"the question has {len(question)} characters, over this assistant's limit of "
                                f"{self.max_question_chars}; shorten it to the question itself")
        return question

    def ask(self, question: str, *, top_k: int = DEFAULT_TOP_K) -> dict:
        """{"answer", "confidence", "handoff", "handoff_message", "intent", "matches", "threshold", "seconds"}."""
        started = time.perf_counter()
        question = self.check_question(question)
        return self.answer(question, self.retriever.rank([question], self.mode, self.route)[0], top_k, started)

    def answer(self, question: str, ranking, top_k: int, started: float) -> dict:
        from fmkit.apps.assistant.confidence import features

        confidence = float(self.calibrator(features(ranking))[0])
        handoff = not len(ranking.indices) or confidence < self.threshold
        matches = self.matches(ranking, top_k)
        return {"question": question, "answer": None if handoff else matches[0]["text"],
                "confidence": round(confidence, 4), "handoff": bool(handoff),
                "handoff_message": HANDOFF_MESSAGE if handoff else None, "intent": ranking.intent,
                "matches": matches, "threshold": round(self.threshold, 4),
                "seconds": round(time.perf_counter() - started, 4)}

    def matches(self, ranking, top_k: int) -> list[dict]:
        found = []
        for rank, (index, cosine) in enumerate(zip(ranking.indices[:top_k], ranking.cosine[:top_k]), start=1):
            entry = self.retriever.entries[int(index)]
            match = {"rank": rank, "id": entry["id"], "text": entry["text"], "score": round(float(cosine), 4),
                     "source": entry["source"], "kind": entry["kind"], "category": entry.get("category")}
            if entry["kind"] == "faq":
                match["question"] = entry["questions"][0]
            found.append(match)
        return found

    def retrieve(self, question: str, top_k: int = DEFAULT_TOP_K) -> list[dict]:
        """The ranked passages for ``question`` (the grounded composer reads these)."""
        question = self.check_question(question)
        return self.matches(self.retriever.rank([question], self.mode, self.route)[0], top_k)

    # -- the card ---------------------------------------------------------------------------
    def describe(self) -> dict:
        """What the card shows: training data, retrieval metrics, handoff threshold and precision."""
        from fmkit.apps.assistant.store import REPORTS_DIR

        m = self.manifest
        report = self.path / REPORTS_DIR / "evaluation.json"
        evaluation = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
        faq = m["faq"]
        retrieval = m["retrieval"]
        way = retrieval["mode"] + ("+intent" if retrieval["route_by_intent"] else "")
        return {
            "name": self.name, "built_at": m["built_at"], "fmkit_version": m["fmkit_version"],
            "encoder": {key: m["encoder"][key] for key in ("name", "digest", "runtime")},
            "faq": {"source": faq["source"], "rows": faq["rows"],
                    "categories": len(faq["categories"]) if faq["categories"] else None,
                    "duplicate_questions": len(faq["duplicate_questions"])},
            "documents": {"files": m["documents"]["files"], "chunks": m["documents"]["chunks"]},
            "intent": None if not m["intent"] else {"bundle": m["intent"]["bundle"], "labels": len(m["intent"]["labels"]),
                                                    "test_accuracy": m["intent"]["test_accuracy"]},
            "index": m["index"],
            "retrieval": {"mode": retrieval["mode"], "route_by_intent": retrieval["route_by_intent"],
                          "metrics": retrieval["calibration_metrics"][way], "measured_on": "calibration questions"},
            "handoff": {key: m["handoff"][key] for key in ("threshold", "target_precision", "precision", "coverage",
                                                           "calibration_questions", "calibration_source")},
            "evaluation": evaluation,
        }

    def __repr__(self) -> str:
        return f"Assistant({self.name!r}, {self.path}, entries={len(self.retriever.entries)})"
