"""The VADER ground-truth parsing and binary splits, on a fake cache (no download)."""

from __future__ import annotations

import pytest


@pytest.fixture
def fake_vader_cache(tmp_path, monkeypatch):
    from trl_token_ext.demo.data import VADER_SOURCES

    monkeypatch.setenv("TRL_TOKEN_EXT_CACHE", str(tmp_path))
    folder = tmp_path / "vader_ground_truth"
    folder.mkdir()
    ratings = [2.5, -1.2, 0.3, -0.4, 0.0, 3.1, -2.0, 0.5, -0.5, 1.0]  # 0.3, -0.4 and 0.0 are near-neutral
    for index, source in enumerate(VADER_SOURCES):
        lines = [f"{i}\t{r}\t{source} sentence {i} with\ttab" for i, r in enumerate(ratings)]
        text = "\r\n".join(lines) + ("\r\n" if index % 2 else "")  # CRLF, with or without a final newline
        (folder / f"{source}_GroundTruth.txt").write_text(text + "\n\t\n", encoding="utf-8")  # + a blank row
    return folder


def test_load_vader_sentences_parses_rows(fake_vader_cache):
    from trl_token_ext.demo.data import load_vader_sentences

    rows = load_vader_sentences()
    assert len(rows) == 40
    assert rows[0] == {
        "text": "movieReviewSnippets sentence 0 with\ttab",
        "rating": 2.5,
        "source": "movieReviewSnippets",
    }


def test_vader_splits_drop_near_neutral_and_binarise(fake_vader_cache):
    from trl_token_ext.demo.data import vader_sentiment_splits

    splits = vader_sentiment_splits(neutral_margin=0.5, test_size=8, eval_size=4, seed=0)
    assert [len(splits[name]) for name in ("train", "eval", "test")] == [16, 4, 8]  # 7 kept × 4 sources = 28
    assert splits["train"].features["label"].names == ["negative", "positive"]
    for name in ("train", "eval", "test"):
        for row in splits[name]:
            assert abs(row["rating"]) >= 0.5
            assert row["label"] == int(row["rating"] > 0)
    # 4 positive, 3 negative per source: stratification keeps the test split at 16:12 → 8 × 4/7 ≈ 4 or 5 positive
    assert sum(splits["test"]["label"]) in (4, 5)
