"""Malformed data and inputs are refused with an error naming the line, the column or the file and the fix,
never silently mangled and never a traceback (issue 13: defects 6, 10 and the "1" vs "1.0" labels)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import synthetic_reviews, write_csv
from fmkit.data import DataConfig, load_text_classification
from fmkit.data.readers import read_table
from fmkit.errors import BadInputError


def load(path, **kwargs):
    return load_text_classification(DataConfig(source=str(path), **kwargs))


def fmkit_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fmkit", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


# -- ragged rows (defect 6) ------------------------------------------------------------------------

def test_extra_fields_on_the_first_row_are_an_error_not_an_index(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\nhello world,pos,extra,x\ngood film,pos\nbad film,neg\n")
    with pytest.raises(BadInputError, match=r"line 2 has 4 fields, but the header \(line 1\) has 2 \('text', 'label'"):
        read_table(path)


@pytest.mark.parametrize("suffix, separator", [(".csv", ","), (".tsv", "\t")])
def test_short_and_long_rows_anywhere_are_named_by_line(tmp_path, suffix, separator):
    path = tmp_path / f"d{suffix}"
    lines = [separator.join(row) for row in (("text", "label"), ("good film", "pos"), ("bad film",),
                                             ("ok film", "pos", "x"), ("fine", "pos"))]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInputError) as error:
        load(path)
    assert "line 3 has 1 field, line 4 has 3 fields, but the header (line 1) has 2" in str(error.value)


def test_quoted_commas_newlines_and_blank_lines_still_read(tmp_path):
    path = tmp_path / "quoted.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerow(["great, really \"great\"\nsecond line, too", "pos"])
        writer.writerow(["x" * 200_000, "neg"])  # over csv's default 128 KiB field limit
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n   \nlast one,pos\n")  # blank and whitespace-only lines are skipped, as pandas does
    frame = read_table(path)
    assert frame["text"].tolist()[0] == "great, really \"great\"\nsecond line, too"
    assert frame["label"].tolist() == ["pos", "neg", "pos"]


def test_a_multiline_record_with_a_wrong_count_names_its_first_line(tmp_path):
    path = tmp_path / "open-quote.csv"
    path.write_text('text,label\ngood,pos\n"never closed,pos\nbad,neg\nfine,pos\n')
    with pytest.raises(BadInputError, match=r"line 3 has 1 field \(its quoted value runs on to line 5"):
        read_table(path)


def test_gzipped_csv_is_checked_too(tmp_path):
    import gzip

    path = tmp_path / "d.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("text,label\nhello world,pos,extra,x\ngood film,neg\n")
    with pytest.raises(BadInputError, match="line 2 has 4 fields"):
        read_table(path)


def test_the_field_count_check_keeps_reading_fast(tmp_path):
    path = write_csv(tmp_path / "big.csv", [(f"a film, \"quoted\" {i} " * 4, "pos" if i % 2 else "neg")
                                            for i in range(200_000)])  # ~22 MB
    import pandas as pd

    started = time.perf_counter()
    pd.read_csv(path, dtype=str, keep_default_na=False)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    assert len(read_table(path)) == 200_000
    checked = time.perf_counter() - started
    assert checked < 3 * plain + 0.5, (checked, plain)  # one extra C-speed pass, not a Python parser


def test_anonymize_refuses_a_ragged_table_and_writes_nothing(tmp_path):
    source = tmp_path / "ragged.csv"
    source.write_text("text,label\nhello world,pos,extra,x\nmail me at a@b.example,pos\n")
    result = fmkit_cli("anonymize", source, "--out", tmp_path / "out.csv", "--no-progress")
    assert result.returncode == 2, result.stderr
    assert "line 2 has 4 fields" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_jsonl_rows_must_be_objects_with_the_columns(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "good", "label": "pos"}\n["bad", "neg"]\n')
    with pytest.raises(BadInputError, match=r"line 2: expected a JSON object, got list"):
        load(path)
    path.write_text('{"text": "good", "label": "pos"}\n{"text": "bad"}\n{"text": "ok", "label": null}\n')
    with pytest.raises(BadInputError, match=r"line 2: no field 'label' \(other lines have it\)"):
        load(path)


# -- unhandled exceptions that belong to exit 2 (defect 10) ---------------------------------------

def test_a_parquet_label_column_of_lists_is_named_with_its_type(tmp_path):
    import pandas as pd

    path = tmp_path / "lists.parquet"
    pd.DataFrame({"text": [f"film {i}" for i in range(20)], "label": [["a", "b"]] * 10 + [["c"]] * 10}).to_parquet(path)
    with pytest.raises(BadInputError, match=r"column 'label' holds lists \(row 1: \['a', 'b'\]\).*Flatten it"):
        load(path)


def test_too_few_rows_per_class_says_the_minimum(tmp_path):
    rows = [(f"film {c} {k}", f"class{c}") for c in range(2000) for k in range(1 + c % 3)]
    path = write_csv(tmp_path / "many.csv", rows)
    data = load(path)  # reading is fine (evaluate --split all needs no held-out split); training is not
    assert len(data.split("all")[0]) == len(rows)
    with pytest.raises(BadInputError) as error:
        data.split("validation")
    message = str(error.value)
    assert "too few rows per class" in message and "2000 classes with 1-3 rows each" in message
    assert "a class needs at least 6 rows" in message and "--validation-fraction/--test-fraction" in message


def test_the_minimum_rows_per_class_matches_the_split():
    from fmkit.data.split import rows_needed_per_class, stratified_split

    for validation, test in ((0.1, 0.1), (0.25, 0.25), (0.0, 0.2), (0.05, 0.3)):
        needed = rows_needed_per_class(validation, test)
        for size, reaches in ((needed, True), (needed - 1, False)):
            splits = stratified_split(["a"] * size, validation, test, seed=0)
            held_out = [splits[name] for name, fraction in (("validation", validation), ("test", test)) if fraction]
            assert all(held_out) == reaches and bool(splits["train"]), (validation, test, size)


def test_a_zero_validation_fraction_is_not_an_empty_batch_crash(tiny_bert_dir):
    from transformers import AutoTokenizer

    from fmkit.data.batching import encode_texts

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    assert encode_texts(tokenizer, [], 64).input_ids == []


def test_predict_input_that_is_not_utf8_names_the_byte(tiny_bundle, tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("a warm film\ncaf\u00e9 good\n".encode("latin-1"))
    result = fmkit_cli("predict", tiny_bundle, "--input", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "latin.txt, line 2, column 4: byte 0xe9 is not valid UTF-8 (byte offset 15)" in result.stderr
    assert "iconv -f latin1 -t utf-8" in result.stderr
    jsonl = tmp_path / "latin.jsonl"
    jsonl.write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    result = fmkit_cli("predict", tiny_bundle, "--input", jsonl)
    assert result.returncode == 2 and "line 1, column 14: byte 0xe9" in result.stderr, result.stderr


def test_predict_reads_a_txt_file_one_text_per_line(tiny_bundle, tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("a warm, funny film\n\nboring and dull\n", encoding="utf-8")
    result = fmkit_cli("predict", tiny_bundle, "--input", path, "--json")
    assert result.returncode == 0, result.stderr
    assert [row["text"] for row in json.loads(result.stdout)] == ["a warm, funny film", "boring and dull"]
    result = fmkit_cli("predict", tiny_bundle, "--input", tmp_path / "missing.jsonl")
    assert result.returncode == 2 and "--input" in result.stderr and "does not exist" in result.stderr


def test_finetune_from_a_pickle_only_bundle_is_refused(tiny_bundle, reviews_csv, tmp_path):
    import shutil

    import torch
    from safetensors.torch import load_file

    bundle = tmp_path / "pickled"
    shutil.copytree(tiny_bundle, bundle)
    torch.save(load_file(bundle / "model.safetensors"), bundle / "pytorch_model.bin")
    (bundle / "model.safetensors").unlink()
    result = fmkit_cli("finetune", "--model", bundle, "--data", reviews_csv, "--out", tmp_path / "out",
                       "--epochs", "1", "--no-progress")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "fmkit never loads pickles" in result.stderr and "pytorch_model.bin" in result.stderr


def test_bad_image_files_are_named(tmp_path):
    from PIL import Image

    from fmkit.data.images.readers import load_image_file

    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(BadInputError, match="fake.png: not a readable image"):
        load_image_file(tmp_path / "fake.png")
    Image.new("L", (64, 64), 200).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(BadInputError, match="cut.png: not a readable image"):
        load_image_file(tmp_path / "cut.png")
    Image.new("L", (14_000, 13_000)).save(tmp_path / "bomb.png")  # 182 M pixels, a few hundred bytes on disk
    with pytest.raises(BadInputError, match="bomb.png: too many pixels to decode safely"):
        load_image_file(tmp_path / "bomb.png")


def test_image_paths_for_predict_are_checked(tmp_path):
    from fmkit.data.inputs import read_image_paths

    (tmp_path / "folder").mkdir()
    with pytest.raises(BadInputError, match="folder is a directory; pass image files"):
        read_image_paths([str(tmp_path / "folder")], None, "bundle")
    listing = tmp_path / "paths.txt"
    listing.write_bytes(b"caf\xe9.png\n")
    with pytest.raises(BadInputError, match=r"paths.txt, line 1, column 4: byte 0xe9 is not valid UTF-8"):
        read_image_paths([], str(listing), "bundle")
    with pytest.raises(BadInputError, match="no images: pass image files after bundle"):
        read_image_paths([], None, "bundle")


# -- labels that are one number written two ways (defect 11) --------------------------------------

def test_one_number_written_two_ways_is_one_class_with_a_warning(tmp_path):
    labels = ["1", "1.0", " 1", "0", "0.00"]
    path = write_csv(tmp_path / "numbers.csv", [(text, labels[i % 5]) for i, (text, _) in
                                                enumerate(synthetic_reviews(100))])
    with pytest.warns(UserWarning, match=r"labels '1' \(40 rows\), '1.0' \(20 rows\) in column 'label' are the "
                                         r"same number written differently; merged into one class '1'"):
        data = load(path)
    assert data.label_names == ["0", "1"]
    assert data.report.merged_labels == {"1": {"1": 40, "1.0": 20}, "0": {"0": 20, "0.00": 20}}


def test_same_text_labelled_1_and_1_0_is_not_a_conflict():
    from fmkit.data.clean import clean_records

    texts, labels, report = clean_records(["good", "good", "bad"], ["1", "1.0", "0"])
    assert (texts, labels, report.conflicting_dropped, report.duplicates_dropped) == (["good", "bad"], ["1", "0"], 0, 1)


def test_numbers_written_one_way_keep_their_spelling():
    from fmkit.data.clean import merge_numeric_spellings, plain_number

    assert merge_numeric_spellings(["1.0", "2.0", "2.5", "007", "x"]) == (["1.0", "2.0", "2.5", "007", "x"], {})
    assert merge_numeric_spellings(["007", "7", "1e400"])[0] == ["7", "7", "1e400"]  # huge exponents: not numbers
    assert [plain_number(s) for s in ("1.50", "+3", "-0.0", "1e2", ".5")] == ["1.5", "3", "0", "100", "0.5"]


def test_integer_labels_keep_their_spelling_in_every_format(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = synthetic_reviews(40)
    texts, labels = [t for t, _ in rows], [i % 2 for i in range(40)]
    write_csv(tmp_path / "d.csv", zip(texts, labels))
    with open(tmp_path / "d.jsonl", "w") as handle:  # one missing label: pandas would make the column floats
        for index, (text, label) in enumerate(zip(texts, labels)):
            handle.write(json.dumps({"text": text, "label": None if index == 0 else label}) + "\n")
    pq.write_table(pa.table({"text": texts, "label": pa.array([None] + labels[1:], pa.int64())}),
                   tmp_path / "d.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped row without a label
        for name in ("d.csv", "d.jsonl", "d.parquet"):
            assert load(tmp_path / name).label_names == ["0", "1"], name
    assert pd.read_parquet(tmp_path / "d.parquet")["label"].dtype == "float64"  # what the fix works around


def test_utf8_errors_count_bytes_from_the_start_of_the_file_and_a_bom_is_dropped():
    from fmkit.data.readers import decode_utf8

    assert decode_utf8(b"\xef\xbb\xbfgood film\n", "in.txt") == "good film\n"
    with pytest.raises(BadInputError, match=r"in.txt, line 2, column 4: byte 0xe9 is not valid UTF-8 \(byte offset 10"):
        decode_utf8(b"\xef\xbb\xbfok\r\ncaf\xe9\n", "in.txt")
