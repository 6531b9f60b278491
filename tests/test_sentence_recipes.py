"""`trl_token_ext.sentence.recipes`: the `train-classifier` entry point (`train_classifier_main`) and its errors."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"bad\.csv: the file is empty"),
        ("text,label\n", r"bad\.csv: the file has a header \['text', 'label'\] but no rows"),
        ("text,label\nfine,pos\nnot, fine,neg\nok,neg\n", r"bad\.csv, line 3: 3 fields, but the header .* has 2"),
        ("text,label\nfine,pos\nempty label,\nok,neg\n", r"bad\.csv \(train\): column 'label', example 1: missing"),
        ("text,label\nfine,pos\n,neg\nok,neg\n", r"bad\.csv \(train\): column 'text', example 1: .*None"),
    ],
    ids=["empty", "header-only", "malformed-row", "empty-label-cell", "empty-text-cell"],
)
def test_unreadable_csv_names_file_and_line(tmp_path, content, message):
    from trl_token_ext.sentence.recipes import train_classifier_main

    path = tmp_path / "bad.csv"
    path.write_text(content)
    argv = ["--dataset_name", str(path), "--model_name_or_path", "no-such-model", "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match=message):
        train_classifier_main(argv)
