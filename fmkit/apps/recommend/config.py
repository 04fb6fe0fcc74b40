"""What ``fmkit recommend train`` is given: the data, which models to fit, the text model's and the ranker's settings.

Loads no torch and no pandas (tests/test_layering.py): the CLI validates a whole training run,
every problem at once, before anything heavy starts. Each field becomes a flag of
``fmkit recommend train`` (fmkit/cli/from_config.py), its description the help.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fmkit.apps.recommend.data import RecommendDataConfig
from fmkit.apps.recommend.hybrid import HybridConfig
from fmkit.apps.recommend.text_model import TextModelConfig

BASELINE_MODELS = ("popularity", "item-knn", "als", "bpr")
ALL_MODELS = BASELINE_MODELS + ("text", "hybrid")


class TrainConfig(BaseModel):
    """One recommender: data -> baselines -> text model -> hybrid ranker -> evaluation, in one run."""

    model_config = ConfigDict(extra="forbid")

    data: RecommendDataConfig = Field(default_factory=RecommendDataConfig)
    text: TextModelConfig = Field(default_factory=TextModelConfig)
    hybrid: HybridConfig = Field(default_factory=HybridConfig)
    models: list[str] = Field(list(ALL_MODELS), description="models to fit and evaluate side by side: "
                              f"{', '.join(ALL_MODELS)} (the hybrid ranks the union of the others' candidates)")
    serving_model: str = Field("hybrid", description="the model `recommend for` and the server use unless a "
                               "request names another")
    name: str | None = Field(None, description="the recommender's name (default: the output folder's name)")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        errors = []
        unknown = [name for name in self.models if name not in ALL_MODELS]
        if unknown:
            errors.append(f"models {unknown}: use some of {', '.join(ALL_MODELS)}")
        if len(set(self.models)) != len(self.models):
            errors.append(f"models {self.models} names a model twice")
        if "hybrid" in self.models and not [m for m in self.models if m != "hybrid" and m in ALL_MODELS]:
            errors.append("the hybrid ranker needs at least one other model to take candidates from (e.g. als,text)")
        if self.serving_model not in self.models:
            errors.append(f"serving_model={self.serving_model!r} is not among the models trained ({self.models}); "
                          "pick one of them")
        if errors:
            raise ValueError("; ".join(errors))
        # the fixed order: baselines, then the text model, then the hybrid over them
        self.models = [name for name in ALL_MODELS if name in self.models]
        return self
