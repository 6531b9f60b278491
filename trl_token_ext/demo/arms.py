"""One arm of a demo task, in this process or in a child process: train, sample the held-out prompts, measure.

* ``token``: `TokenGRPOTrainer` with the task's outcome reward *and* its token rewards;
* ``control``: TRL's own ``GRPOTrainer`` with the same outcome reward, prompts, budget, seed and learning rate.

:func:`run_arm` returns a JSON-ready dict (held-out measures, samples, log history, heatmap rows, timings);
:func:`run_arms` runs several arms one after another here, or side by side as child processes
(``python -m trl_token_ext.demo.arms SPEC.json``, one torch thread each) whose progress lines it shows.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

ARMS = ("token", "control")


def _log_history(history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The numeric entries of a trainer's log history (what the report plots)."""
    return [{k: v for k, v in entry.items() if isinstance(v, (int, float))} for entry in history]


def _sample(task: str, options: dict, model: Any, tokenizer: Any, setup: Any, prompts: list, columns: dict) -> list:
    """Seeded samples of every evaluation prompt (prompt-major), with their columns, outcome and measures input."""
    from trl_token_ext.demo import tasks
    from trl_token_ext.demo.task import sample_completions

    samples = sample_completions(
        model,
        tokenizer,
        prompts,
        num_samples=options["eval_samples"],
        max_new_tokens=options["max_completion_length"],
        temperature=options["temperature"],
        seed=options["seed"],
    )
    for index, sample in enumerate(samples):
        sample.update({key: values[index // options["eval_samples"]] for key, values in columns.items()})
    tasks.score(task, samples, setup)
    return samples


def _heatmap_rows(task: str, arm: str, samples: list, setup: Any, tokenizer: Any, options: dict, trainer: Any) -> list:
    """Heatmap rows (as dicts) of the arm's held-out samples: each term's raw values, then the advantage."""
    from trl_token_ext.demo import credit, tasks
    from trl_token_ext.visualize import completion_heatmap

    token_arm = arm == "token"
    views = credit.credit_views(
        samples,
        tokenizer,
        options["eval_samples"],
        (setup.outcome_funcs, setup.outcome_weights),
        [*setup.token_funcs, *tasks.display_views(task)],
        weights=setup.token_weights if token_arm else None,
        settings=credit.trainer_settings(trainer.args) if token_arm else None,
        coef=options["token_advantage_coef"],
    )
    rows = []
    for sample, view in zip(samples, views):
        caption = f"{arm} arm: {tasks.OUTCOME_NAMES[task]} {sample['reward']:.3f}"
        row = completion_heatmap(tokenizer, sample["completion_ids"], view, None, caption)
        rows.append(asdict(row))
    return rows


def run_arm(spec: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run the arm ``spec`` (``task``, ``arm``, ``options``, ``assets``, ``before``, ``work``); returns its result."""
    import torch
    import transformers
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext.demo import tasks
    from trl_token_ext.demo.progress import ArmProgress
    from trl_token_ext.demo.task import load_demo_policy
    from trl_token_ext.trainers.grpo import TokenGRPOConfig, TokenGRPOTrainer

    task, arm, options = spec["task"], spec["arm"], spec["options"]
    label = f"{task}/{arm}"
    torch.set_num_threads(options["threads"])
    times = {"start": time.perf_counter()}
    emit({"label": label, "status": "loading the policy and the rewards"})
    policy, peft_config, tokenizer = load_demo_policy(
        spec["assets"]["model"], options["lora_r"], options["load_in_4bit"]
    )
    setup = tasks.setup(task, options, spec["assets"], policy)
    prompts, columns = tasks.eval_set(task, options)
    result: dict[str, Any] = {"task": task, "arm": arm, "options": options}
    times["loaded"] = time.perf_counter()
    if spec.get("before"):
        emit({"label": label, "status": "sampling the held-out prompts before training"})
        before = _sample(task, options, policy, tokenizer, setup, prompts, columns)
        result["before"] = {"measures": tasks.measure(task, before, policy, tokenizer), "samples": before}
    times["before"] = time.perf_counter()
    common = dict(
        output_dir=str(Path(spec["work"]) / f"run-{task}-{arm}"),
        per_device_train_batch_size=options["batch_size"],
        num_generations=options["num_generations"],
        max_completion_length=options["max_completion_length"],
        temperature=options["temperature"],
        max_steps=options["steps"],
        learning_rate=options["learning_rate"],
        gradient_checkpointing=False,  # 135M parameters: memory is no issue, recomputation would cost ~30 %
        bf16=False,  # TRL's default bf16 autocast is ~10x slower on CPUs without native bf16 (measured)
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=options["seed"],
    )
    kwargs = dict(
        model=policy,
        reward_funcs=setup.outcome_funcs,
        train_dataset=Dataset.from_dict(setup.train_columns),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[ArmProgress(emit, label)],
    )
    transformers.set_seed(options["seed"])  # the LoRA initialisation starts from the same state in both arms
    if arm == "control":
        trainer = GRPOTrainer(args=GRPOConfig(**common, reward_weights=setup.outcome_weights), **kwargs)
    else:
        from trl_token_ext.visualize import TokenHeatmapCallback

        heatmaps = Path(spec["report"]) / "training_heatmaps"
        kwargs["callbacks"].append(TokenHeatmapCallback(heatmaps, every_n_steps=options["heatmap_every"], value="all"))
        config = TokenGRPOConfig(
            **common,
            reward_weights=setup.outcome_weights,
            token_reward_weights=setup.token_weights,
            **setup.token_config,
        )
        trainer = TokenGRPOTrainer(args=config, token_reward_funcs=setup.token_funcs, **kwargs)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    times["trained"] = time.perf_counter()
    emit({"label": label, "status": "sampling the held-out prompts after training"})
    after = _sample(task, options, trainer.model, tokenizer, setup, prompts, columns)
    result["after"] = {"measures": tasks.measure(task, after, trainer.model, tokenizer), "samples": after}
    result["heatmap"] = _heatmap_rows(task, arm, after, setup, tokenizer, options, trainer)
    result["log_history"] = _log_history(trainer.state.log_history)
    result["token_reward_weights"] = dict(zip([f.__name__ for f in setup.token_funcs], setup.token_weights))
    result["outcome_reward_weights"] = dict(zip([f.__name__ for f in setup.outcome_funcs], setup.outcome_weights))
    times["after"] = time.perf_counter()
    result["seconds"] = {
        "load": times["loaded"] - times["start"],
        "before": times["before"] - times["loaded"],
        "train": times["trained"] - times["before"],
        "after": times["after"] - times["trained"],
        "total": times["after"] - times["start"],
    }
    emit({"label": label, "status": f"done in {result['seconds']['total']:.0f} s"})
    for sample in [*result.get("before", {}).get("samples", []), *after]:
        sample["prompt"] = sample["prompt"][-1]["content"]  # the question is enough in the report
    return result


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file)."""
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(data), encoding="utf-8")
    staging.replace(path)


def _child_main(spec_path: str) -> None:
    """``python -m trl_token_ext.demo.arms SPEC.json``: run the arm, write ``spec["result"]``."""
    from trl_token_ext.demo.progress import emit_line
    from trl_token_ext.demo.quiet import quiet_third_party

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    quiet_third_party(spec["options"]["load_in_4bit"])
    _write_json(Path(spec["result"]), run_arm(spec, emit_line))


def _pump(process: subprocess.Popen, log: Path, events: queue.Queue) -> None:
    """Forward the child's progress lines to ``events``; everything else it prints goes to ``log``."""
    from trl_token_ext.demo.progress import parse_line

    with log.open("a", encoding="utf-8") as out:
        for line in process.stdout:
            event = parse_line(line)
            if event is None:
                out.write(line)
            else:
                events.put(event)


def _launch(spec: dict[str, Any], events: queue.Queue) -> tuple[subprocess.Popen, threading.Thread, dict[str, Any]]:
    """Start the child process of ``spec`` (its spec file, log and result under ``spec["work"]``)."""
    work, name = Path(spec["work"]), f"{spec['task']}-{spec['arm']}"
    spec = {**spec, "result": str(work / f"{name}.result.json"), "log": str(work / f"{name}.log")}
    spec_path = work / f"{name}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    threads = str(spec["options"]["threads"])
    process = subprocess.Popen(
        [sys.executable, "-m", "trl_token_ext.demo.arms", str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
    )
    pump = threading.Thread(target=_pump, args=(process, Path(spec["log"]), events), daemon=True)
    pump.start()
    return process, pump, spec


def run_arms(specs: list[dict[str, Any]], jobs: int, display: Any) -> list[dict[str, Any]]:
    """Run ``specs`` here one after another (``jobs=1``) or as child processes, ``jobs`` at a time (each with
    ``options["threads"]`` threads; its output goes to ``<work>/<task>-<arm>.log``, shown when it fails)."""
    if jobs <= 1:
        return [run_arm(spec, display.update) for spec in specs]
    results: dict[int, dict[str, Any]] = {}
    pending = list(enumerate(specs))
    running: dict[int, tuple[subprocess.Popen, threading.Thread, dict[str, Any]]] = {}
    events: queue.Queue = queue.Queue()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                index, spec = pending.pop(0)
                running[index] = _launch(spec, events)
            try:
                display.update(events.get(timeout=0.5))
            except queue.Empty:
                pass
            for index, (process, pump, spec) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[index]
                pump.join(timeout=10)  # the child's last lines are in the log and the queue
                if process.returncode != 0:
                    tail = Path(spec["log"]).read_text(encoding="utf-8", errors="replace")[-3000:]
                    raise RuntimeError(f"demo arm {spec['task']}/{spec['arm']} failed:\n{tail}")
                results[index] = json.loads(Path(spec["result"]).read_text(encoding="utf-8"))
        while not events.empty():
            display.update(events.get())
    finally:
        for process, _, _ in running.values():
            process.kill()
    return [results[index] for index in range(len(specs))]


if __name__ == "__main__":
    _child_main(sys.argv[1])
