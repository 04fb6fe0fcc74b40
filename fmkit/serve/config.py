"""Server settings: bind address, batching, limits, access control."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Served names appear in URLs (/v1/models/NAME:predict), metrics labels and the audit log.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # anchored: JSON Schema patterns search
STORE_SCHEMES = ("sqlite:", "postgresql:", "postgresql+psycopg:")  # what fmkit/store opens
MODEL_NAME_RULE = "1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"


def model_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a served model, or None when it can."""
    if MODEL_NAME.fullmatch(name):
        return None
    return f"model name {name[:80]!r} is not allowed: use {MODEL_NAME_RULE}"


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundles: dict[str, Path] = Field(default_factory=dict, description="model name -> bundle directory")
    assistants: dict[str, Path] = Field(default_factory=dict, description="assistant name -> assistant directory "
                                        "(`fmkit assistant build`), served at /v1/assistants/NAME:ask")
    monitors: dict[str, Path] = Field(default_factory=dict, description="monitor name -> monitor YAML (the "
                                      "`fmkit monitor --config` file): events in at POST /v1/monitors/NAME:ingest, "
                                      "alerts at GET /v1/monitors/NAME/alerts, trend page /ui/monitors/NAME")
    recommenders: dict[str, Path] = Field(default_factory=dict, description="recommender name -> directory (`fmkit "
                                          "recommend train`), served at /v1/recommenders/NAME:recommend")
    max_events: int = Field(1000, ge=1, description="events per :ingest request (413 above)")
    generate: bool = Field(False, description="assistants draft a grounded answer (SmolLM2-135M-Instruct, citing the "
                           "retrieved passages) when the FAQ has no close match; loads ~0.6 GB at start")
    generate_timeout_s: float = Field(60.0, gt=0, description="per-request deadline of an ask that drafts an answer")
    host: str = Field("127.0.0.1", description="bind address; loopback unless you mean to expose it")
    port: int = Field(8000, ge=0, le=65535)
    workspace: Path = Field(Path("."), description="holds .fmkit/serve.sqlite (keys, audit log) unless `store` is set")
    store: str | None = Field(None, description="database URL of the API keys, revocations and audit log: "
                              "sqlite:///path/serve.sqlite or postgresql://user@host:5432/db, which replicas on "
                              "several machines share (None: sqlite WORKSPACE/.fmkit/serve.sqlite)")
    workers: int = Field(1, description="worker processes on one port (uvicorn workers); each loads every model "
                         "and keeps its own rate-limit buckets, batches and drift windows (docs/serve_scale.md)")
    key_cache_seconds: float = Field(2.0, ge=0, le=300, description="how long a worker trusts a key row it read: "
                                     "a revocation reaches every worker and replica within this time")
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
    max_images: int = Field(32, ge=1, description="images per request (413 above)")
    max_image_bytes: int = Field(1_000_000, ge=1, description="encoded bytes per image (413 above)")
    max_image_pixels: int = Field(4_194_304, ge=1, description="width x height per image, read from its header "
                                  "before decoding (413 above): a small file must not decode to gigabytes")
    bundle_root: Path | None = Field(None, description=":load only accepts bundles whose real path (symlinks "
                                     "resolved) is inside this directory; None: any directory the server can read")
    rate_per_second: float = Field(50.0, gt=0, description="per-key token bucket refill rate")
    rate_burst: int = Field(100, ge=1, description="per-key token bucket size")
    log_inputs: bool = Field(False, description="store request texts in the audit log (off: never stored)")
    threads: int | None = Field(None, ge=1, description="runtime threads per model")
    precision: Literal["fp32", "bf16", "fp16", "auto"] | None = Field(
        None, description="weights of PyTorch bundles (None: as stored): bf16 halves memory and runs ~2x faster on "
        "CPUs with AVX-512 BF16 (fp16: CUDA only; auto: the fastest the device has); ONNX bundles keep their own types")

    watch: bool = Field(False, description="drift watch on every served model: its traffic vs its bundle's test "
                        "split (PSI of predicted labels, mean-confidence drop, MMD on features) in /metrics and GET "
                        "/v1/models/NAME/drift, alerts to WORKSPACE/.fmkit/drift/NAME/alerts.jsonl and the webhook")
    watch_window: int = Field(500, ge=10, description="served rows per drift window (the most recent ones)")
    watch_min_rows: int = Field(100, ge=10, description="rows a window needs before drift is judged")
    watch_every: int = Field(50, ge=1, description="new rows between two drift checks")
    watch_psi: float = Field(0.25, gt=0, description="PSI of the predicted-label shares that alerts (0.25: the "
                             "usual 'major shift')")
    watch_confidence_drop: float = Field(0.10, gt=0, le=1, description="drop of the mean top probability that alerts")
    watch_alpha: float = Field(0.01, gt=0, lt=1, description="MMD permutation p-value below which input drift alerts")
    watch_permutations: int = Field(200, ge=20, description="permutations per MMD test")
    watch_webhook: str | None = Field(None, description="http(s) URL drift alerts are POSTed to (retried, then "
                                      "recorded in webhook_failures.jsonl)")

    @field_validator("bundles", "assistants", "monitors", "recommenders")
    @classmethod
    def _names(cls, bundles: dict[str, Path]) -> dict[str, Path]:
        problems = [problem for name in bundles if (problem := model_name_problem(name))]
        if problems:
            raise ValueError("; ".join(problems))
        return bundles

    @field_validator("workers")
    @classmethod
    def _workers(cls, workers: int) -> int:
        if workers < 1:
            raise ValueError(f"workers={workers}: run at least 1 worker process (1 is one process; more than the "
                             "machine's cores adds memory, not throughput)")
        return workers

    @field_validator("store")
    @classmethod
    def _store(cls, store: str | None) -> str | None:
        if store is not None and not store.startswith(STORE_SCHEMES):
            from fmkit.store import redact_url  # only on this error: the config stays cheap to import

            raise ValueError(f"store={redact_url(store)!r}: use sqlite:///path/to/serve.sqlite or "
                             "postgresql://user@host:5432/database")
        return store

    @model_validator(mode="after")
    def _one_namespace(self) -> "ServeConfig":
        """A key's allowlist names every served thing alike, so one name cannot be two; every problem at once."""
        problems = []
        kinds = {"model": self.bundles, "assistant": self.assistants, "monitor": self.monitors,
                 "recommender": self.recommenders}
        owners: dict[str, list[str]] = {}
        for kind, names in kinds.items():
            for name in names:
                owners.setdefault(name, []).append(kind)
        shared = sorted(name for name, named in owners.items() if len(named) > 1)
        if shared:
            what = "; ".join(f"{name!r} names both " + " and ".join(("an " if kind[0] in "aeiou" else "a ") + kind
                                                              for kind in owners[name]) for name in shared)
            problems.append(f"{what}: give each its own name (key allowlists name models, assistants, monitors and "
                            "recommenders alike)")
        if self.watch_min_rows > self.watch_window:
            problems.append(f"watch_min_rows={self.watch_min_rows} exceeds watch_window={self.watch_window}: a "
                            "window never holds that many rows; lower it or widen the window")
        if self.watch_webhook is not None and not self.watch_webhook.startswith(("http://", "https://")):
            problems.append(f"watch_webhook={self.watch_webhook!r}: use an http:// or https:// URL")
        if problems:
            raise ValueError("; ".join(problems))
        return self
