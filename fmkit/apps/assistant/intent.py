"""The intent classifier: a text-classification bundle (``fmkit finetune``) that names the category.

Opened with ``fmkit.load`` like any user's model; its labels must be the FAQ's categories, so a
predicted intent can route the search to that category's answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmkit.errors import BadInputError


class IntentModel:
    def __init__(self, path: Path, *, runtime_options: dict | None = None):
        import fmkit

        self.path = Path(path)
        try:
            self.model = fmkit.load(self.path, **(runtime_options or {}))
        except BadInputError as error:
            raise BadInputError(f"--intent-bundle {self.path}: {error}") from None
        if self.model.adapter.capabilities.serves != "texts":
            raise BadInputError(f"--intent-bundle {self.path} is a {self.model.manifest.task} bundle, which does not "
                                "classify texts; fine-tune one on the questions: `fmkit finetune --data FAQ "
                                "--text-column Q --label-column CATEGORY --out models/intents`")
        self.labels = list(self.model.labels)
        self.digest = self.model.manifest.content_digest
        self.runtime = self.model.manifest.runtime  # the bundle's own: "onnx" for an export-onnx or quantize-dynamic variant
        test = self.model.manifest.metrics.get("test", {})
        self.accuracy = test.get("accuracy")

    def require_categories(self, categories: set[str]) -> None:
        """The bundle must know every FAQ category, or routing would hide some answers for good."""
        unknown = sorted(categories - set(self.labels))
        if unknown:
            raise BadInputError(f"--intent-bundle {self.path} predicts {len(self.labels)} labels but the FAQ's intent "
                                f"column has {len(unknown)} it does not know ({', '.join(map(repr, unknown[:5]))}); "
                                "fine-tune the intent bundle on this FAQ's category column")

    def trained_questions(self) -> set[str] | None:
        """The questions the classifier trained on (its saved train split of its recorded data), normalized;
        None when its training data cannot be read back. Its probabilities on them are optimistic."""
        import warnings

        from fmkit.apps.assistant.faq import normalize
        from fmkit.bundle.split import split_rows
        from fmkit.data.config import DataConfig
        from fmkit.data.dataset import load_text_classification

        stored = self.model.manifest.data.get("config")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its cleaning report was shown when it trained
                data = load_text_classification(DataConfig.model_validate(stored))
        except (BadInputError, OSError, ValueError, TypeError):
            return None
        return {normalize(data.texts[row]) for row in split_rows(self.path, data, "train")}

    def probabilities(self, questions: list[str]) -> np.ndarray:
        """(questions, labels) probabilities."""
        return np.asarray(self.model.predict_proba(list(questions)), dtype=np.float32)
