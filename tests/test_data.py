"""`trl_token_ext.data`: reading local data files (`load_data_file`) and its errors."""

from __future__ import annotations

import pytest


def test_unreadable_jsonl_names_file_and_cause(tmp_path):
    from trl_token_ext.data import load_data_file

    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "pos"}\n{"text": "b", "label"\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: could not be read as json: \w+"):
        load_data_file(path)
