"""``fmkit tune``'s own settings (the trials' finetune settings are a ``FinetuneConfig``).

Validated on construction, every problem at once; no optuna or torch here (tests/test_import_cost.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fmkit.tune.objectives import ObjectiveSpec, parse_objectives

SAMPLERS = ("auto", "tpe", "nsga2", "random")
PRUNERS = ("median", "asha", "none")


class TuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    trials: int = Field(20, ge=1, description="finished trials (complete or pruned) the study should hold; a re-run "
                        "or a second worker runs only the ones still missing")
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: parse_objectives("accuracy:max"),
        description="name:max|min,...: manifest measurements the trials are judged by")
    storage: str | None = Field(None, description="Optuna RDB URL of the study (default: sqlite:///OUT/study.db); "
                                "workers on several machines share one PostgreSQL/MySQL URL")
    study_name: str | None = Field(None, description="study name in the storage (default: OUT's folder name)")
    sampler: Literal[SAMPLERS] = Field("auto", description="auto: TPE for one objective, NSGA-II for several")
    pruner: Literal[PRUNERS] = Field("median", description="stop unpromising trials early on the validation metric "
                                     "each evaluation: median (MedianPruner), asha (successive halving) or none")
    sampler_seed: int = Field(0, description="seed of the sampler (plus the trials already in the study, so a "
                              "resumed run draws new points); give each concurrent worker its own")
    startup_trials: int = Field(4, ge=0, description="trials that finish before the pruner may stop any")
    warmup_evaluations: int = Field(1, ge=0, description="evaluations of a trial before the pruner may stop it")
    latency_samples: int = Field(100, ge=10, description="single-text calls timed per trial for latency objectives")
    measure_threads: int | None = Field(None, ge=1, description="runtime threads when measuring latency")
    fairness_sensitive: list[str] = Field(default_factory=list,
                                          description="group columns audited for the fairness_gap objective")

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, value):
        if isinstance(value, (str, list)) and not all(isinstance(v, ObjectiveSpec) for v in value):
            return parse_objectives(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> "TuneConfig":
        errors = []
        if len(self.objectives) > 1 and self.pruner == "asha":
            errors.append("--pruner asha needs a single objective (Optuna's successive halving ranks one value); "
                          "use --pruner median (applied to the first validation objective) or none")
        if self.pruner != "none" and not any(o.objective.needs == "validation" for o in self.objectives):
            errors.append(f"--pruner {self.pruner} prunes on a validation metric, but no objective is one "
                          "(accuracy, macro_f1, log_loss); add one or pass --pruner none")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def sampler_name(self) -> str:
        if self.sampler != "auto":
            return self.sampler
        return "tpe" if len(self.objectives) == 1 else "nsga2"

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def pruning_objective(self) -> ObjectiveSpec | None:
        """The validation objective the pruner watches: the first one."""
        if self.pruner == "none":
            return None
        return next(o for o in self.objectives if o.objective.needs == "validation")
