"""The bundle: one directory that plain ``transformers`` loads, plus the ``fmkit.json`` manifest."""

from fmkit.bundle.manifest import MANIFEST_NAME, SCHEMA_VERSION, LineageEntry, Manifest
from fmkit.bundle.store import (
    content_digest,
    is_bundle,
    read_manifest,
    update_manifest,
    write_bundle,
    write_manifest,
)
from fmkit.bundle.verify import loading_weights, open_bundle, trust_unverified

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "LineageEntry",
    "Manifest",
    "content_digest",
    "is_bundle",
    "loading_weights",
    "open_bundle",
    "read_manifest",
    "trust_unverified",
    "update_manifest",
    "write_bundle",
    "write_manifest",
]
