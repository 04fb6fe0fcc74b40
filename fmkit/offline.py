"""Keep every Hugging Face library off the network: fmkit loads only local files."""

import os

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def enforce_offline() -> None:
    """Set the offline switches before transformers/huggingface_hub are imported."""
    for name in _OFFLINE_VARIABLES:
        os.environ[name] = "1"
    # Telemetry and implicit hub lookups are network calls too.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Per-file "Loading weights" bars from transformers are noise next to fmkit's own progress.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
