"""benchmarks/real_ab.py: keyword rewards, statistics, resumability and a tiny end-to-end run (offline)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import real_ab  # noqa: E402
import real_ab_tasks as tasks  # noqa: E402


# ---------------------------------------------------------------- keywords
def test_find_word_is_whole_word_case_insensitive_and_suffix_tolerant():
    assert tasks.find_word("Cats sat down.", "cat") == (0, 4)
    assert tasks.find_word("A CAT.", "cat") == (2, 5)
    assert tasks.find_word("It rained; raining.", "rain") == (3, 9)
    assert tasks.find_word("A category of things", "cat") is None
    assert tasks.find_word("concatenate", "cat") is None
    assert tasks.find_word("the dog-house", "dog") == (4, 7)
    assert tasks.coverage("A red apple and a dog.", ["red", "apple", "river"]) == pytest.approx(2 / 3)
    assert tasks.coverage("", ["red"]) == 0.0
    with pytest.raises(ValueError, match="empty"):
        tasks.coverage("text", [])


def test_keyword_prompts_are_fixed_and_distinct():
    train, held_out = tasks.keyword_columns("train"), tasks.keyword_columns("held_out")
    assert len(train["prompt"]) == 24 and len(held_out["prompt"]) == 8
    assert len({tuple(sorted(w)) for w in train["required"]}) == 24
    assert all(len(set(w)) == 3 for w in train["required"] + held_out["required"])
    assert not {w for ws in train["required"] for w in ws} & {w for ws in held_out["required"] for w in ws}
    assert train["prompt"][0][0] == {"role": "system", "content": tasks.KEYWORD_SYSTEM}
    assert train["prompt"][0][1]["content"] == "Write one sentence about a farm using the words red, chair and ball."
    with pytest.raises(ValueError, match="split"):
        tasks.keyword_columns("test")


def test_keyword_token_reward_sums_to_the_outcome_on_the_first_occurrences(tiny_tokenizer):
    text = "The cat sat on the mat. The cat was red."
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    required = ["red", "Cat", "dog"]
    (values,) = tasks.KeywordTokens()(
        prompts=["p"], completions=[text], completion_ids=[ids], processing_class=tiny_tokenizer, required=[required]
    )
    (outcome,) = tasks.KeywordCoverage()(completions=[[{"role": "assistant", "content": text}]], required=[required])
    assert outcome == pytest.approx(2 / 3)
    assert sum(values) == pytest.approx(outcome)
    rewarded = [i for i, v in enumerate(values) if v]
    words = tiny_tokenizer.decode([ids[i] for i in rewarded])
    assert words.replace(" ", "") == "catred"  # the first " cat" (not the second) and " red"
    first_cat = tasks.find_word(text, "cat")
    offsets = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert offsets[rewarded[0]][1] > first_cat[0] and offsets[rewarded[0]][0] < first_cat[1]
    assert values[-1] == 0.0  # EOS


def test_keyword_token_reward_needs_the_required_column(tiny_tokenizer):
    with pytest.raises(ValueError, match="required"):
        tasks.KeywordTokens()(prompts=["p"], completions=["a"], completion_ids=[[5]], processing_class=tiny_tokenizer)


# ---------------------------------------------------------------- statistics
def test_steps_to_threshold_and_censoring():
    curve = [{"step": step, "held_out_score": score} for step, score in [(0, 0.2), (4, 0.55), (8, 0.7)]]
    assert tasks.steps_to_threshold(curve, 0.6, censor=20) == (8, False)
    assert tasks.steps_to_threshold(curve, 0.2, censor=20) == (0, False)
    assert tasks.steps_to_threshold(curve, 0.9, censor=20) == (20, True)


def test_bootstrap_intervals_on_hand_made_numbers():
    assert tasks.bootstrap_mean([[0.5, 0.5], [0.5]]) == (0.5, 0.5)
    low, high = tasks.bootstrap_mean([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]], resamples=500)
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert tasks.bootstrap_mean([[0.0, 1.0]] * 3, resamples=500) == (low, high)  # fixed RNG seed
    assert tasks.bootstrap_ratio([4, 8, 12], [8, 16, 24]) == (0.5, 0.5)
    low, high = tasks.bootstrap_ratio([4, 8], [8, 8], resamples=500)
    assert low == pytest.approx(0.5) and high == pytest.approx(1.0)
    assert all(math.isnan(v) for v in tasks.bootstrap_ratio([], []))
    mean, low, high = tasks.mean_band([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.303 / math.sqrt(3))
    assert tasks.mean_band([0.4]) == (0.4, 0.4, 0.4)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(SystemExit):
        real_ab.parse_args(["--batch_size", "6", "--num_generations", "4"])
    with pytest.raises(SystemExit):
        real_ab.parse_args(["--device", "tpu"])
    args = real_ab.parse_args(["--tiny", "--eval-every", "3"])
    assert (args.steps, args.eval_every, args.max_completion_length) == (4, 3, 8)


# ---------------------------------------------------------------- resumability and the aggregate
def fake_result(arm: str, seed: int, scores: list[float], steps: int = 8, eval_every: int = 4) -> dict:
    curve = [{"step": 4 * i, "held_out_score": s, "train_reward": None} for i, s in enumerate(scores)]
    return {
        "config": {"task": "keywords", "arm": arm, "seed": seed, "steps": steps, "eval_every": eval_every},
        "curve": curve,
        "final_samples": [{"prompt_index": 0, "text": "x", "score": scores[-1]}] * 2,
        "wall_seconds_per_step": 10.0,
        "wall_seconds_per_eval": 2.0,
    }


def test_finished_runs_are_skipped_and_aggregated(tmp_path, monkeypatch, capsys):
    # outcome reaches 0.6 at step 8 (seed 0) / never (seed 1, censored at 12); token at step 4 on both
    runs = {
        ("outcome", 0): [0.1, 0.3, 0.6],
        ("outcome", 1): [0.1, 0.2, 0.4],
        ("token", 0): [0.1, 0.7, 0.8],
        ("token", 1): [0.1, 0.6, 0.9],
    }
    for (arm, seed), scores in runs.items():
        real_ab.write_json(real_ab.result_path(tmp_path, "keywords", arm, seed), fake_result(arm, seed, scores))
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "keywords").iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(real_ab, "run_one", no_training)
    argv = ["--tiny", "--tasks", "keywords", "--arms", "outcome", "token", "--seeds", "0", "1", "--out", str(tmp_path)]
    summary = real_ab.main(argv)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "keywords").iterdir() if p in stamps} == stamps
    # the starting model's samples were added once per seed (the quality table's reference row)
    starts = sorted(p.name for p in (tmp_path / "keywords").iterdir() if p not in stamps)
    assert starts == ["start_seed0.json", "start_seed1.json"]
    assert set(summary["quality"]["keywords"]) == {"start", "outcome", "token"}
    assert not list(tmp_path.rglob("*.tmp"))
    rows = summary["tasks"]["keywords"]
    assert rows["outcome"]["steps_to_threshold"] == [8, 12] and rows["outcome"]["censored"] == [False, True]
    assert rows["token"]["steps_to_threshold"] == [4, 4]
    assert rows["token"]["final_score"] == pytest.approx(0.85)
    assert summary["ratio"]["value"] == pytest.approx(8 / 20) and summary["ratio"]["arm"] == "token"
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "real_ab_ratio: 0.400"
    assert lines[-2].startswith("real_ab_ratio 95% interval (keywords, token vs outcome")
    assert (tmp_path / "keywords_curves.png").stat().st_size > 0
    assert "| token | 2 | 0.850" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["ratio"]["seeds"] == [0, 1]
    # curve mean: the mean over the evals after step 0 (token: (0.7+0.8)/2, (0.6+0.9)/2), then over seeds
    assert rows["token"]["curve_mean"] == pytest.approx(0.75) and rows["outcome"]["curve_mean"] == pytest.approx(0.375)
    # sweep at 0.6 (the default threshold): as above; at 0.8: outcome never (12, 12), token 8 and 8 -> 8/12
    sweep = {row["threshold"]: row for row in summary["sweep"]}
    assert sweep[0.6]["ratios"]["token"] == pytest.approx(4 / 10)
    assert sweep[0.8]["mean_steps"] == {"outcome": 12.0, "token": 8.0} and math.isnan(sweep[0.8]["ratios"]["shaped"])
    assert "| keywords | 0.8 | 12.0 | 8.0 |  | 0.67 | nan |" in (tmp_path / "summary.md").read_text()
    # --report-only never trains, even for runs that are missing
    real_ab.main(["--report-only", "--out", str(tmp_path), "--seeds", "0", "1", "2"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == "real_ab_ratio: 0.400"


def test_tiny_end_to_end_then_resume(tmp_path, monkeypatch, capsys):
    argv = ["--tiny", "--tasks", "keywords", "--arms", "outcome", "token", "--seeds", "0", "--steps", "2"]
    argv += ["--out", str(tmp_path)]
    real_ab.main(argv)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("real_ab_ratio: ") and "95% interval" in lines[-2]
    for arm in ("outcome", "token"):
        record = json.loads(real_ab.result_path(tmp_path, "keywords", arm, 0).read_text())
        assert [p["step"] for p in record["curve"]] == [0, 2]
        assert record["curve"][-1]["train_reward"] is not None
        assert len(record["final_samples"]) == 8 * 2 and len(record["step_seconds"]) == 2
        assert record["config"]["arm"] == arm and record["config"]["seed"] == 0
    token = json.loads(real_ab.result_path(tmp_path, "keywords", "token", 0).read_text())
    outcome = json.loads(real_ab.result_path(tmp_path, "keywords", "outcome", 0).read_text())
    assert token["token_reward_funcs"] == {"keyword_tokens": 1.0} and outcome["token_reward_funcs"] == {}
    assert token["curve"][0]["held_out_score"] == outcome["curve"][0]["held_out_score"]  # same start, same seed
    assert (tmp_path / "summary.md").exists() and (tmp_path / "keywords_curves.png").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "keywords").iterdir()}
    monkeypatch.setattr(real_ab, "run_one", lambda *a, **k: pytest.fail("a finished run was trained again"))
    real_ab.main(argv)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "keywords").iterdir()} == stamps
    # the starting model's samples are those every arm evaluated at step 0
    start = json.loads(real_ab.result_path(tmp_path, "keywords", "start", 0).read_text())
    assert start["curve"][0]["held_out_score"] == outcome["curve"][0]["held_out_score"]
