"""docs/evidence.md against the committed result files of the pre-registered verifier study.

Every number the page quotes from the study is the report script's output on the committed files: rerun here from
copies of those files and compared with the committed summary and with the page.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import verifier_pairs as pairs  # noqa: E402
import verifier_report as report  # noqa: E402
import verifier_study as study  # noqa: E402

STUDY = ROOT / "docs" / "evidence" / "verifier_study"
EVIDENCE = ROOT / "docs" / "evidence.md"
PREREGISTERED = "cfbdc6a"  # the commit the reported runs ran from (third pre-registration note)
QUOTED = ("summary.md", "pairs.md")  # quoted whole in docs/evidence.md between begin/end markers
SEEDS = (0, 1, 2, 3, 4)


def result_files() -> list[Path]:
    return [STUDY / f"{arm}_seed{seed}.json" for arm in study.ARMS for seed in SEEDS]


def test_every_reported_run_is_committed_and_ran_the_preregistered_code():
    for path in result_files():
        assert path.exists(), f"missing reported run {path.name}"
        record = json.loads(path.read_text(encoding="utf-8"))
        assert not record["config"]["select"], path.name
        assert not record["config"]["tiny"], path.name
        assert record["code"].startswith(PREREGISTERED), f"{path.name} ran from {record['code']}"
        assert "+dirty" not in record["code"], path.name


@pytest.fixture(scope="module")
def fresh_report(tmp_path_factory):
    """The report script on copies of the committed result files: (summary, folder it wrote to)."""
    folder = tmp_path_factory.mktemp("verifier_study")
    for path in [STUDY / "start.json", *STUDY.glob("*_seed*.json")]:
        shutil.copy(path, folder / path.name)
    summary = report.main(["--out", str(folder), "--no-plot"])
    pairs.main(["--out", str(folder)])
    return summary, folder


def test_committed_summary_is_what_the_report_prints_from_the_committed_runs(fresh_report):
    summary, folder = fresh_report
    assert summary["seeds"] == list(SEEDS)
    assert set(summary["arms"]) == set(study.ARMS)
    for name in ("summary.md", "summary.json", "pairs.md"):
        assert (folder / name).read_text(encoding="utf-8") == (STUDY / name).read_text(encoding="utf-8"), name
    assert (STUDY / "test_accuracy.png").stat().st_size > 10_000


def ratio_line(summary: dict, name: str, arm: str) -> str:
    row = summary["comparisons"][arm]
    low, high = row["completions_ratio_bootstrap"]
    return f"{name}: {row['completions_ratio']:.3f} [{low:.3f}, {high:.3f}]"


def test_evidence_page_quotes_the_summary_the_pairs_and_both_ratio_lines(fresh_report):
    summary, folder = fresh_report
    page = EVIDENCE.read_text(encoding="utf-8")
    for name in QUOTED:
        begin, end = f"<!-- verifier_study/{name}: begin -->\n", f"<!-- verifier_study/{name}: end -->"
        assert page.count(begin) == 1 and page.count(end) == 1, name
        assert page.split(begin, 1)[1].split(end, 1)[0] == (folder / name).read_text(encoding="utf-8"), name
    for name, arm in (("verifier_ratio", "verifier"), ("prime_real_ratio", "prime")):
        assert f"`{ratio_line(summary, name, arm)}`" in page, name
    assert "evidence/verifier_study/test_accuracy.png" in page


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_preregistration_precedes_every_reported_result_file():
    shallow = git("rev-parse", "--is-shallow-repository")
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        pytest.skip("needs the full git history (not a shallow clone or an export)")
    note = git("show", f"{PREREGISTERED}:docs/evidence/preregistration.md")
    assert "Third note, before any reported run" in note.stdout
    for path in result_files():
        relative = path.relative_to(ROOT).as_posix()
        added = git("log", "--diff-filter=A", "--format=%H", "--", relative).stdout.split()
        assert added, f"{relative} is not committed"
        commit = added[-1]
        assert commit[: len(PREREGISTERED)] != PREREGISTERED, relative
        assert git("merge-base", "--is-ancestor", PREREGISTERED, commit).returncode == 0, relative
