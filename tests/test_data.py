"""Data layer: readers, cleaning, split, fingerprint, and every bad-input error."""

import json

import pytest

from conftest import synthetic_reviews, write_csv
from fmkit.data import DataConfig, load_text_classification
from fmkit.data.batching import length_grouped_order, pad_batch
from fmkit.data.clean import clean_records, normalize_text
from fmkit.data.split import fingerprint, stratified_split
from fmkit.errors import BadInputError


def load(path, **kwargs):
    return load_text_classification(DataConfig(source=str(path), **kwargs))


def test_normalize_text_nfkc_and_whitespace():
    assert normalize_text("  ﬁne\u00a0\tfilm\n\n") == "fine film"


def test_cleaning_counts_empty_duplicate_and_conflicting():
    texts = ["good", " good ", "", "bad", "meh", "meh", "x"]
    labels = ["pos", "pos", "pos", "neg", "pos", "neg", ""]
    kept_texts, kept_labels, report = clean_records(texts, labels)
    assert kept_texts == ["good", "bad"] and kept_labels == ["pos", "neg"]
    assert (report.empty_dropped, report.duplicates_dropped, report.conflicting_dropped,
            report.missing_label_dropped, report.rows_kept) == (1, 1, 2, 1, 2)


def test_split_is_stratified_disjoint_and_deterministic():
    labels = ["a"] * 80 + ["b"] * 20
    first = stratified_split(labels, 0.1, 0.2, seed=3)
    assert first == stratified_split(labels, 0.1, 0.2, seed=3)
    assert first != stratified_split(labels, 0.1, 0.2, seed=4)
    every = first["train"] + first["validation"] + first["test"]
    assert sorted(every) == list(range(100))
    assert [labels[i] for i in first["test"]].count("b") == 4  # 20% of each class
    assert [labels[i] for i in first["validation"]].count("a") == 8


def test_fingerprint_changes_with_content():
    assert fingerprint(["a"], ["x"]) == fingerprint(["a"], ["x"])
    assert fingerprint(["a"], ["x"]) != fingerprint(["a"], ["y"])


def test_reads_csv_tsv_jsonl_parquet_identically(tmp_path):
    import pandas as pd

    rows = synthetic_reviews(60)
    frame = pd.DataFrame(rows, columns=["review", "sentiment"])
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.tsv", index=False, sep="\t")
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    prints = {
        suffix: load(tmp_path / f"d.{suffix}", text_column="review", label_column="sentiment").fingerprint
        for suffix in ("csv", "tsv", "jsonl", "parquet")
    }
    assert len(set(prints.values())) == 1


def test_max_rows_keeps_class_balance(reviews_csv):
    data = load(reviews_csv, max_rows=100)
    assert len(data.texts) == 100
    assert data.labels.count("pos") == 50


def test_missing_file_names_it(tmp_path):
    with pytest.raises(BadInputError, match=r"nope\.csv does not exist"):
        load(tmp_path / "nope.csv")


def test_missing_column_lists_existing_columns(reviews_csv):
    with pytest.raises(BadInputError) as error:
        load(reviews_csv, text_column="txt")
    message = str(error.value)
    assert "'txt' not found" in message and "'text', 'label'" in message and "Did you mean 'text'" in message


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BadInputError, match="is empty"):
        load(tmp_path / "empty.csv")


def test_header_only_file(tmp_path):
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(BadInputError, match="no rows"):
        load(tmp_path / "header.csv")


def test_single_class_is_refused(tmp_path):
    path = write_csv(tmp_path / "one.csv", [("good film", "pos"), ("great film", "pos")])
    with pytest.raises(BadInputError, match="only one class"):
        load(path)


def test_non_utf8_reports_line_and_column(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ngood,pos\ncaf\u00e9 film,neg\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"line 3, column 4: byte 0xe9 is not valid UTF-8"):
        load(path)


def test_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"text": "a", "label": "x"}) + "\n{broken\n")
    with pytest.raises(BadInputError, match=r"line 2, column 2: invalid JSON"):
        load(path)


def test_unknown_builtin_suggests(tmp_path):
    with pytest.raises(BadInputError, match="Did you mean 'rotten-tomatoes'"):
        load_text_classification(DataConfig(source="rotten-tomatos"))


def test_config_reports_every_error_at_once():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as error:
        DataConfig(source="x.csv", format="xls", validation_fraction=1.5, max_rows=3)
    message = str(error.value)
    assert "format='xls'" in message and "validation_fraction=1.5" in message and "max_rows=3" in message


def test_rotten_tomatoes_builtin_loads_real_data():
    data = load_text_classification(DataConfig(source="rotten-tomatoes"))
    assert data.label_names == ["fresh", "rotten"]
    assert data.report.rows_read == 12808 and data.report.duplicates_dropped == 56
    assert sum(len(v) for v in data.splits.values()) == 12752


def test_length_grouped_batches_cover_every_index_once():
    import numpy as np

    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    batches = length_grouped_order(lengths, 16, seed=1, epoch=0)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert [b.tolist() for b in batches] == [b.tolist() for b in length_grouped_order(lengths, 16, 1, 0)]
    assert [b.tolist() for b in batches] != [b.tolist() for b in length_grouped_order(lengths, 16, 1, 1)]
    # Grouping by length cuts padding well below random batching.
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_order = np.random.default_rng(0).permutation(1000)
    random_padded = sum(16 * lengths[random_order[i:i + 16]].max() for i in range(0, 1000, 16))
    assert padded < 0.8 * random_padded


def test_pad_batch_masks_padding():
    batch = pad_batch([[1, 2, 3], [4]], pad_id=0, multiple_of=4)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0], [4, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]


def test_texts_over_max_length_are_truncated_and_counted(tiny_bert_dir):
    from transformers import AutoTokenizer

    from fmkit.data.batching import encode_texts

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    texts = ["great film"] * 3 + ["the plot was dull and the acting was bland " * 5] * 2
    with pytest.warns(UserWarning, match=r"2 of 5 texts are longer than max_length=16 tokens"):
        encoded = encode_texts(tokenizer, texts, 16)
    assert encoded.truncated == 2
    assert max(encoded.lengths) == 16
    assert encoded.input_ids[3][-1] == tokenizer.sep_token_id  # still ends like a full sequence


def test_group_columns_follow_the_cleaned_rows(tmp_path):
    rows = [("good film", "pos", "a"), ("bad film", "neg", "b"), ("good film", "pos", "c"),  # duplicate dropped
            ("", "pos", "d"), ("fine film", "pos", "e"), ("awful film", "neg", "f")] + \
           [(f"text {i}", "pos" if i % 2 else "neg", "g") for i in range(20)]
    path = write_csv(tmp_path / "g.csv", rows, header=("text", "label", "group"))
    data = load_text_classification(DataConfig(source=str(path), group_columns=["group"]))
    by_text = dict(zip(data.texts, data.groups["group"]))
    assert by_text["good film"] == "a" and by_text["fine film"] == "e" and "d" not in data.groups["group"]
    plain = load_text_classification(DataConfig(source=str(path)))
    assert plain.fingerprint == data.fingerprint and plain.splits == data.splits  # groups never change the split
    with pytest.raises(BadInputError, match="'sex' not found.*--sensitive"):
        load_text_classification(DataConfig(source=str(path), group_columns=["sex"]))
    with pytest.raises(ValueError, match="is the text or label column"):
        DataConfig(source=str(path), group_columns=["label"])


def test_drop_duplicates_can_be_turned_off_for_tabular_records(tmp_path):
    rows = [("age: 30.", "<=50K"), ("age: 30.", ">50K"), ("age: 30.", "<=50K")] + \
           [(f"age: {i}.", "<=50K" if i % 2 else ">50K") for i in range(40, 60)]
    path = write_csv(tmp_path / "t.csv", rows)
    assert len(load_text_classification(DataConfig(source=str(path))).texts) == 20
    assert len(load_text_classification(DataConfig(source=str(path), drop_duplicates=False)).texts) == 23


def test_adult_builtin_reads_the_uci_files_as_text():
    data = load_text_classification(DataConfig(source="adult", group_columns=["sex", "race"]))
    assert len(data.texts) == 45222  # 48,842 rows minus those with a missing value, as documented
    assert data.label_names == ["<=50K", ">50K"]
    assert data.texts[0].startswith("age: 39. workclass: State-gov. education: Bachelors.")
    assert "sex" not in data.texts[0] and "White" not in data.texts[0] and "fnlwgt" not in data.texts[0]
    assert set(data.groups["sex"]) == {"Female", "Male"}
    assert {"White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"} == set(data.groups["race"])
    assert sum(label == ">50K" for label in data.labels) == 11208  # the known 24.8% positive rate
