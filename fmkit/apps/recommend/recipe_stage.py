"""Registers ``recommender`` as a recipe stage: interactions + item text -> a trained, evaluated recommender
directory (baselines, text model, hybrid) with its report and card (reports/, outside the digest).

    - name: recommender-movies
      stage: recommender
      data: {data: movielens}           # or {interactions: ratings.csv, items: items.csv, text_columns: [...]}
      text: {model: minilm}             # a built-in base, a folder, or an earlier text-retrieval finetune stage
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict

from fmkit.apps.recommend.config import TrainConfig
from fmkit.recipe.stages import STAGES, StageContext, StageResult, StageSpec


class RecommenderStageConfig(TrainConfig):
    model_config = ConfigDict(extra="forbid")


def _run(cfg: RecommenderStageConfig, out: Path, context: StageContext) -> StageResult:
    from fmkit.apps.recommend.report import CARD_MD
    from fmkit.apps.recommend.store import REPORTS_DIR
    from fmkit.apps.recommend.train import train_recommender

    manifest = train_recommender(TrainConfig(**cfg.model_dump()), out, overwrite=True, log=context.log)
    card = out / REPORTS_DIR / CARD_MD
    context.log(f"  card: {card}")
    serving = manifest["evaluation"].get(manifest["serving_model"], {})
    return StageResult(out, {"serving_model": manifest["serving_model"], "ndcg@10": serving.get("ndcg@10"),
                             "cold.ndcg@10": serving.get("cold.ndcg@10"),
                             "train_seconds": manifest["train_seconds"], "card": str(card)})


STAGES.register("recommender")(
    StageSpec(RecommenderStageConfig, references=("text.model",), run=_run,
              description="interactions + item text -> CF baselines, a fine-tuned text model and a LambdaRank "
              "hybrid, evaluated side by side, with a report and card")
)
