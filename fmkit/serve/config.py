"""Server settings: bind address, batching, limits, access control."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundles: dict[str, Path] = Field(description="model name -> bundle directory")
    host: str = Field("127.0.0.1", description="bind address; loopback unless you mean to expose it")
    port: int = Field(8000, ge=0, le=65535)
    workspace: Path = Field(Path("."), description="holds .fmkit/serve.sqlite (keys, audit log)")
    auth: bool = Field(True, description="require API keys (off only for local experiments)")
    max_batch: int = Field(32, ge=1, description="texts per forward pass")
    inference_batch: int = Field(
        16, ge=1, description="texts per model call inside a batch: a batch is length-sorted and cut into "
        "chunks this size, so short texts do not pad to the longest one")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a request waits for others to share its batch")
    queue_size: int = Field(256, ge=1, description="requests waiting per model before 503")
    request_timeout_s: float = Field(10.0, gt=0, description="per-request deadline -> 504")
    max_texts: int = Field(64, ge=1, description="texts per request (413 above)")
    max_chars: int = Field(5000, ge=1, description="characters per text (422 above)")
    max_explain_texts: int = Field(8, ge=1, description="texts per :explain request (413 above); explaining "
                                   "costs ~steps forward+backward passes per text")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="request body size (413 above)")
    rate_per_second: float = Field(50.0, gt=0, description="per-key token bucket refill rate")
    rate_burst: int = Field(100, ge=1, description="per-key token bucket size")
    log_inputs: bool = Field(False, description="store request texts in the audit log (off: never stored)")
    threads: int | None = Field(None, ge=1, description="runtime threads per model")
    precision: Literal["fp32", "bf16", "fp16", "auto"] | None = Field(
        None, description="weights of PyTorch bundles (None: as stored): bf16 halves memory and runs ~2x faster on "
        "CPUs with AVX-512 BF16 (fp16: CUDA only; auto: the fastest the device has); ONNX bundles keep their own types")
