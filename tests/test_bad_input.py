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
    with pytest.raises(BadInputError, match=r"line 2 has 4 fields, but the header \(line 1\) has 2 \('text', 'label'\)"):
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
