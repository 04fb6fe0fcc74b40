"""``fmkit recommend add-items``: new items embedded by the text model and rankable at once, no retraining.

A shop adds products every day; retraining for each is not an option. The text model reads the new
item's text with the same encoder the other items were embedded with, so its interest score is
comparable at once; the collaborative models have no interactions for it and score it 0, the hybrid
ranker sees it as it saw the cold items it was trained with (popularity 0, its year and genres). The
directory is rewritten atomically (in place, or into ``--out``) and sealed again; the models' files
other than the text model's embeddings and the ranker's item tables are carried over unchanged.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from fmkit.errors import BadInputError


def read_new_items(source: str, item_column: str, text_columns: list[str], data_cfg, known: list) -> "object":
    """The new items as a DataFrame [item, title, text, genres, year]; clear errors for a bad table."""
    import pandas as pd

    from fmkit.apps.recommend.data import _require_columns, item_text
    from fmkit.data.readers import read_table

    table = read_table(Path(source))
    _require_columns(table, [item_column], source, "--item-column")
    _require_columns(table, text_columns, source, "--text-columns")
    if table.empty:
        raise BadInputError(f"{source}: no rows; give at least one new item")
    table = table.rename(columns={item_column: "item"})
    ids = table["item"].astype(str).str.strip()
    if all(isinstance(item, int) for item in known) and ids.str.fullmatch(r"-?\d{1,18}").all():
        table["item"] = ids.astype("int64")
    else:
        table["item"] = ids
    repeated = table["item"][table["item"].duplicated()].unique().tolist()
    if repeated:
        raise BadInputError(f"{source}: item id(s) {repeated[:5]} appear more than once; give each new item once")
    clash = [item for item in table["item"].tolist() if str(item) in {str(k) for k in known}]
    if clash:
        raise BadInputError(f"{source}: item id(s) {clash[:5]} are already in the recommender; new items need new "
                            "ids (to change an existing item's text, retrain)")
    table["text"] = item_text(table, text_columns, data_cfg)
    empty = table.loc[table["text"].str.strip() == "", "item"].tolist()
    if empty:
        raise BadInputError(f"{source}: item(s) {empty[:5]} have no text in {', '.join(text_columns)}; the text model "
                            "ranks a new item by its text")
    genre_column = data_cfg.genre_column
    table["genres"] = table[genre_column].fillna("").astype(str) if genre_column in table.columns else ""
    if "title" not in table.columns:
        table["title"] = table["item"].astype(str)
    table["year"] = pd.to_numeric(table["year"], errors="coerce") if "year" in table.columns else float("nan")
    return table


def add_items_to_directory(path, source: str, *, item_column: str = "item", text_columns: list[str] | None = None,
                           out=None, log=print) -> dict:
    """Add the items of table ``source`` to recommender ``path`` (rewritten atomically, or written to ``out``)."""
    from fmkit.apps.recommend.catalog import item_records
    from fmkit.apps.recommend.data import RecommendDataConfig
    from fmkit.apps.recommend.hybrid import HybridRanker
    from fmkit.apps.recommend.recommender import read_catalog
    from fmkit.apps.recommend.store import ITEMS, MANIFEST, MODELS_DIR, REPORTS_DIR, open_manifest, write_manifest
    from fmkit.apps.recommend.text_model import TextInterestModel
    from fmkit.fileio import atomic_directory, write_json_atomic

    path = Path(path)
    manifest = open_manifest(path)
    if "text" not in manifest["models"]:
        raise BadInputError(f"{path} has no text model (trained with --models {','.join(manifest['models'])}); only "
                            "the text model can rank items no one has interacted with: retrain with text in --models")
    data_cfg = RecommendDataConfig.model_validate(manifest["config"]["data"])
    columns = text_columns or manifest["data"]["facts"].get("text_columns") or []
    catalog, _, _ = read_catalog(path)
    known = [entry["id"] for entry in catalog]
    new = read_new_items(source, item_column, list(columns), data_cfg, known)
    ids, texts = new["item"].tolist(), new["text"].tolist()
    log(f"embedding {len(ids)} new item(s) with the text model of {path}")
    text = TextInterestModel.load(path / MODELS_DIR / "text")
    text.add_items(ids, texts)
    hybrid = None
    if "hybrid" in manifest["models"]:
        hybrid = HybridRanker.load(path / MODELS_DIR / "hybrid", {name: None for name in manifest["models"]})
        genres = [[g.strip() for g in str(value).split(data_cfg.genre_separator) if g.strip()]
                  for value in new["genres"].tolist()]
        hybrid.add_items(ids, [None if year != year else float(year) for year in new["year"].tolist()], genres)
    records = item_records(new)
    target = Path(out) if out is not None else path
    with atomic_directory(target, overwrite=True) as tmp:
        replaced = {MANIFEST, REPORTS_DIR, ITEMS, f"{MODELS_DIR}/text", f"{MODELS_DIR}/hybrid"}
        _copy_except(path, tmp, replaced)
        text.save(tmp / MODELS_DIR / "text")
        if hybrid is not None:
            hybrid.save(tmp / MODELS_DIR / "hybrid")
        write_json_atomic(tmp / ITEMS, catalog + records)
        manifest["added_items"] = list(manifest.get("added_items") or []) + [
            {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "count": len(ids), "source": str(source),
             "text_columns": list(columns)}]
        manifest = write_manifest(tmp, manifest)
    log(f"{target}: {len(catalog) + len(ids)} items ({len(ids)} added; rankable by the text model and the hybrid)")
    return {"recommender": str(target), "added": len(ids), "items": len(catalog) + len(ids),
            "ids": ids, "content_digest": manifest["content_digest"]}


def _copy_except(source: Path, target: Path, skipped: set[str]) -> None:
    """Copy ``source`` into the (empty) ``target`` but for the relative paths in ``skipped``."""
    for entry in sorted(source.rglob("*")):
        relative = entry.relative_to(source).as_posix()
        if any(relative == s or relative.startswith(s + "/") for s in skipped):
            continue
        if entry.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif entry.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry, target / relative)
