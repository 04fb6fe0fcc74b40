"""Request and response bodies (they make the OpenAPI spec at /docs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ImageData = Annotated[str, Field(description="an image file (PNG, JPEG, GIF, BMP or WebP), base64-encoded; a "
                                 "data: URL prefix is allowed", json_schema_extra={"contentEncoding": "base64"})]


class PredictRequest(BaseModel):
    """Exactly one of ``texts`` (text models) or ``images`` (image models): GET /v1/models says which
    (``inputs``) each model takes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": ["texts"]}, {"required": ["images"]}]})

    texts: list[str] = Field(None, min_length=1, description="texts to classify (text models)",
                             examples=[["a warm, funny film"]])
    images: list[ImageData] = Field(None, min_length=1, description="images to classify (image models), each "
                                    "the file's bytes in base64; never a path")

    @model_validator(mode="after")
    def _one_kind(self) -> "PredictRequest":
        if (self.texts is None) == (self.images is None):
            raise ValueError("send exactly one of texts (for a text model) or images (for an image model)")
        return self


class Prediction(BaseModel):
    label: str
    probabilities: dict[str, float]


class PredictResponse(BaseModel):
    model: str
    predictions: list[Prediction]


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1, description="texts to explain", examples=[["the plot is thin but the acting is superb"]])
    target: str | None = Field(None, description="explain this label (default: the predicted one)")
    steps: int = Field(32, ge=2, le=256, description="integrated-gradients steps (more: slower, more exact)")


class WordAttribution(BaseModel):
    word: str
    start: int
    end: int
    attribution: float


class ExplanationBody(BaseModel):
    label: str
    probability: float
    words: list[WordAttribution]
    convergence_delta: float


class ExplainResponse(BaseModel):
    model: str
    method: str
    explanations: list[ExplanationBody]


class ModelSummary(BaseModel):
    name: str
    bundle: str | None = Field(None, description="bundle directory on the server (admin keys only)")
    task: str
    inputs: Literal["texts", "images"] = Field("texts", description="the predict request field this model takes")
    labels: list[str]
    runtime: str
    content_digest: str
    lineage: list[str]
    metrics: dict[str, dict[str, float]]
    benchmarks: dict
    compression: dict
    privacy: dict
    audits: dict = Field(default_factory=dict)
    explainable: bool = False
    precision: str | None = Field(None, description="weights as served (PyTorch bundles: fp32, bf16, fp16)")


class LoadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="bundle directory on the server")


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "predict", "read"] = Field(description="admin, predict or read")
    models: list[Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$")]] = Field(
                              default_factory=lambda: ["*"], min_length=1,
                              description='models this key may use; ["*"] = all (the default)')
    note: str | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _allowlist(cls, models):
        """The key store's own check first, for its message (what to pass instead of an empty list)."""
        from fmkit.serve.keys import check_allowlist

        if isinstance(models, list) and all(isinstance(name, str) for name in models):
            return check_allowlist(models)  # BadInputError is a ValueError: a 422 naming the fix
        return models


class ErrorBody(BaseModel):
    code: str
    message: str
    limit: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
