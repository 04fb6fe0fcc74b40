"""Registers ``anonymize`` as a recipe stage: a data file in, an anonymized data file out (before training)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from fmkit.privacy.anonymize import AnonymizeConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


class AnonymizeStageConfig(AnonymizeConfig):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="CSV/TSV/JSONL/Parquet file, or a built-in dataset, to anonymize")
    key_file: str | None = Field(None, description="secret key file for hash/pseudonymize (default: $FMKIT_ANON_KEY)")
    mapping: str | None = Field(None, description="encrypted pseudonym mapping to write (pseudonymize)")


def _run(cfg: AnonymizeStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.errors import BadInputError
    from fmkit.privacy.anonymize import anonymize_file, load_key

    from fmkit.data.builtin import BUILTIN_DATASETS

    source = Path(cfg.source)
    builtin = cfg.source in BUILTIN_DATASETS and not source.exists()
    if not builtin and not source.is_file():
        raise BadInputError(f"anonymize: source {source} is neither a file nor a built-in dataset "
                            f"({', '.join(BUILTIN_DATASETS.names())})")
    out.mkdir(parents=True, exist_ok=True)
    target = out / (f"{cfg.source}.csv" if builtin else source.name)
    settings = AnonymizeConfig(**cfg.model_dump(exclude={"source", "key_file", "mapping"}))
    key = load_key(cfg.key_file) if settings.operator in ("hash", "pseudonymize") else None
    report = anonymize_file(source, target, settings, key=key, mapping_path=Path(cfg.mapping) if cfg.mapping else None,
                            progress=False)
    found = {c: v["found"] for c, v in report["columns"].items()}
    context.log(f"  anonymized {report['rows']} rows ({report['mb_per_second']} MB/s): {found}")
    return StageResult(target, {"anonymized": str(target), "found": found, "mb_per_second": report["mb_per_second"]})


STAGES.register("anonymize")(
    StageSpec(AnonymizeStageConfig, references=(), run=_run, produces_bundle=False,
              description="PII removed from a data file's text columns (Presidio, offline); later stages use "
                          "its output as data")
)
