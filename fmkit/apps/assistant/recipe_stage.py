"""Registers ``assistant`` as a recipe stage: an encoder (an earlier text-retrieval finetune stage, or
the zero-shot "minilm") + a FAQ (+ an intent bundle, documents) -> a calibrated assistant directory,
with its card (reports/ASSISTANT_CARD.md and card.html, outside the directory's digest).

    - name: assistant
      stage: assistant
      encoder: finetune-faq-encoder     # an earlier stage, a bundle directory, or minilm
      faq: support-faq
      intent_column: category
      intent_bundle: finetune-faq-intent
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict

from fmkit.apps.assistant.config import BuildConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec

ASSISTANT_CARD_MD = "ASSISTANT_CARD.md"


class AssistantStageConfig(BuildConfig):
    model_config = ConfigDict(extra="forbid")


def write_assistant_card(directory: Path) -> tuple[Path, Path]:
    """The assistant's card from what it describes of itself, into its reports/ folder."""
    from fmkit.apps.assistant import Assistant
    from fmkit.apps.assistant.store import REPORTS_DIR
    from fmkit.audit.card import CARD_HTML, render_assistant_markdown, render_html
    from fmkit.fileio import write_text_atomic

    assistant = Assistant.open(directory)
    markdown = render_assistant_markdown(assistant.describe(), assistant.name)
    markdown_path, html_path = directory / REPORTS_DIR / ASSISTANT_CARD_MD, directory / REPORTS_DIR / CARD_HTML
    markdown_path.parent.mkdir(exist_ok=True)
    write_text_atomic(markdown_path, markdown)
    write_text_atomic(html_path, render_html(markdown, f"Assistant card: {assistant.name}"))
    return markdown_path, html_path


def _run(cfg: AssistantStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.apps.assistant.build import build_assistant

    manifest = build_assistant(BuildConfig(**cfg.model_dump()), out, overwrite=True, log=context.log)
    card, _ = write_assistant_card(out)
    context.log(f"  card: {card}")
    handoff, way = manifest["handoff"], manifest["retrieval"]
    metrics = way["calibration_metrics"][way["mode"] + ("+intent" if way["route_by_intent"] else "")]
    return StageResult(out, {"retrieval": way["mode"], "mrr@10": metrics.get("mrr@10"),
                             "handoff_threshold": handoff.get("threshold"), "precision": handoff.get("precision"),
                             "coverage": handoff.get("coverage"), "card": str(card)})


STAGES.register("assistant")(
    StageSpec(AssistantStageConfig, references=("encoder", "intent_bundle"), run=_run,
              description="encoder + FAQ (+ intents, documents) -> a calibrated support assistant and its card")
)
