"""How surges are detected: which detector, its window and thresholds (``DetectorConfig``).

Loads nothing heavy: MonitorConfig (fmkit/apps/monitor/config.py) embeds it and the CLI builds flags
from its fields, so every description below is also a ``--help`` line.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Kept here (not read from the registry) so validating a config imports no detector code;
# tests/test_monitor_trends.py checks this tuple against the registry in detectors/__init__.py.
DETECTOR_NAMES = ("zscore", "adwin", "page-hinkley")


class DetectorConfig(BaseModel):
    """One detector and its settings; every problem is reported at once."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("zscore", description="surge detector: zscore (volume-aware z-score of the negative share "
                      "against the trailing baseline), adwin or page-hinkley (river change detectors on the "
                      "stream of negative/not-negative events)")
    window: int = Field(14, description="trailing baseline length in intervals (the current interval excluded)")
    min_history: int = Field(5, description="intervals with events the baseline needs before any alert")
    min_count: int = Field(5, description="an interval with fewer events than this never alerts (too few to "
                           "tell a surge from noise)")
    threshold: float = Field(3.0, description="zscore: the z the interval's negative share must reach against "
                             "the baseline share (binomial standard error at the interval's count)")
    min_lift: float = Field(1.5, description="zscore: the odds of a negative in the interval (p / (1 - p)) must "
                            "also be at least this multiple of the baseline's odds")
    cooldown: int = Field(1, description="alerting intervals separated by at most this many quiet intervals are "
                          "one surge, hence one alert")
    adwin_delta: float = Field(0.002, description="adwin: confidence of a cut (smaller: fewer, surer changes)")
    ph_threshold: float = Field(6.0, description="page-hinkley: cumulative deviation (in negative events) that "
                                "signals a rise")
    ph_delta: float = Field(0.1, description="page-hinkley: tolerated rise of the negative rate before it counts")
    ph_alpha: float = Field(1.0, description="page-hinkley: forgetting factor of the running mean")

    @model_validator(mode="after")
    def _check(self) -> "DetectorConfig":
        errors = []
        if self.name not in DETECTOR_NAMES:
            errors.append(f"name={self.name!r}: use one of {', '.join(DETECTOR_NAMES)}")
        if self.window < 2:
            errors.append(f"window={self.window}: the baseline needs at least 2 intervals")
        if not 1 <= self.min_history <= self.window:
            errors.append(f"min_history={self.min_history}: must be between 1 and window ({self.window})")
        if self.min_count < 1:
            errors.append(f"min_count={self.min_count}: must be at least 1")
        if self.threshold <= 0:
            errors.append(f"threshold={self.threshold}: must be positive (e.g. 3.0)")
        if self.min_lift < 1.0:
            errors.append(f"min_lift={self.min_lift}: must be at least 1.0 (1.0 turns the check off)")
        if self.cooldown < 0:
            errors.append(f"cooldown={self.cooldown}: must be 0 or more intervals")
        if not 0.0 < self.adwin_delta < 1.0:
            errors.append(f"adwin_delta={self.adwin_delta}: must be between 0 and 1 (e.g. 0.002)")
        if self.ph_threshold <= 0:
            errors.append(f"ph_threshold={self.ph_threshold}: must be positive")
        if not 0.0 <= self.ph_delta < 1.0:
            errors.append(f"ph_delta={self.ph_delta}: must be in [0, 1)")
        if not 0.0 < self.ph_alpha <= 1.0:
            errors.append(f"ph_alpha={self.ph_alpha}: must be in (0, 1]")
        if errors:
            raise ValueError("; ".join(errors))
        return self
