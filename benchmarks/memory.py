"""Peak memory of one TokenGRPOTrainer step: 4-bit NF4 + LoRA vs full-precision full fine-tuning with AdamW.

Run:  python benchmarks/memory.py            (default sizes: smollm2-135m, smollm2-360m, qwen2-0.5b)
      python benchmarks/memory.py --sizes qwen2-0.5b --completion-length 8

Models are randomly initialised from configs with the shapes of real checkpoints (random weights are fine for
memory). Every (size, arm) runs in its own subprocess, arms interleaved; each loads the model and builds the trainer,
then resets the peak-RSS counter (``/proc/self/clear_refs``) and runs one training step (generation, reference-free
loss with ``beta=0``, backward, optimizer step), so the peak counts weights + gradients + optimizer state +
activations + the Python/torch baseline, not checkpoint loading. On CUDA, ``torch.cuda.max_memory_allocated`` of the
step is reported too. The last line is ``memory_ratio: <qlora peak / full peak>`` of the last size measured (peak
RSS on CPU; ``max_memory_allocated`` on CUDA). ``--estimate`` prints the computed 8/12/24 GB table instead.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

SIZES: dict[str, dict] = {
    # name: (config class, kwargs) with the shapes of the real checkpoint (tied embeddings as in the originals)
    "smollm2-135m": {
        "arch": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
    },
    "smollm2-360m": {
        "arch": "llama",
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "vocab_size": 49152,
    },
    "qwen2-0.5b": {
        "arch": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
    },
    "qwen2.5-1.5b": {  # full fine-tuning needs ~25 GB of CPU RAM: run the qlora arm only on small machines
        "arch": "qwen2",
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
    },
}
DEFAULT_SIZES = ["smollm2-135m", "smollm2-360m", "qwen2-0.5b"]

# --estimate: shapes of real checkpoints (hidden, intermediate, layers, heads, kv heads, vocab, tied embeddings)
ESTIMATE_MODELS = {
    "Qwen2.5-0.5B": (896, 4864, 24, 14, 2, 151936, True),
    "Qwen2.5-1.5B": (1536, 8960, 28, 12, 2, 151936, True),
    "Qwen2.5-3B": (2048, 11008, 36, 16, 2, 151936, True),
    "Qwen2.5-7B": (3584, 18944, 28, 28, 4, 152064, False),
    "Llama-3.1-8B": (4096, 14336, 32, 32, 8, 128256, False),
    "Qwen2.5-14B": (5120, 13824, 48, 40, 8, 152064, False),
}
# Bytes per parameter, measured here on CPU (static memory of the loaded 4-bit model; see docs/consumer_gpu.md).
NF4_BYTES, EMBED_BYTES, LORA_BYTES, FULL_BYTES = 0.516, 4.0, 8.0, 16.0
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_checkpoint(size: str, path: str) -> None:
    """Save a randomly initialised model with ``size``'s shapes, plus the tiny offline tokenizer, to ``path``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from trl_token_ext.testing import build_tiny_tokenizer

    torch.set_num_threads(1)
    tokenizer = build_tiny_tokenizer()
    shape = dict(SIZES[size])
    config_cls, model_cls = (
        (Qwen2Config, Qwen2ForCausalLM) if shape.pop("arch") == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    )
    eos = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")]
    config = config_cls(
        **shape,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = model_cls(config)
    model.generation_config = GenerationConfig(pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def run_arm(arm: str, checkpoint: str, completion_length: int, batch: int) -> dict:
    """One GRPO step of ``arm`` ('full' or 'qlora'); returns peak memories in MiB."""
    import torch

    torch.set_num_threads(1)
    from datasets import Dataset
    from trl import ModelConfig

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer
    from trl_token_ext.models import load_policy

    baseline = _rss_kib("VmRSS")
    cuda = torch.cuda.is_available()
    args = TokenGRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="memory-bench-"),
        per_device_train_batch_size=batch,
        num_generations=2,
        max_completion_length=completion_length,
        max_steps=1,
        learning_rate=1e-5,
        optim="adamw_torch",
        bf16=False,  # full precision in both arms (the 4-bit arm computes in fp32 too)
        gradient_checkpointing=True,
        report_to="none",
        use_cpu=not cuda,
        seed=0,
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=1,
    )
    model_args = ModelConfig(model_name_or_path=checkpoint, dtype="float32")
    if arm == "qlora":
        model_args = ModelConfig(
            model_name_or_path=checkpoint,
            dtype="float32",
            load_in_4bit=True,
            use_bnb_nested_quant=True,
            use_peft=True,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            lora_target_modules=LORA_TARGETS,
        )
    # Read the checkpoint into memory instead of mmapping it: a mapped file stays resident (counted in RSS) after the
    # 4-bit arm quantized its weights, which is a loading artefact, not training memory.
    args.model_init_kwargs = {"disable_mmap": True}
    model, peft_config = load_policy(model_args, args)
    args.model_init_kwargs = None

    def length_reward(completions, **kwargs):
        return [float(len(c)) for c in completions]

    def position_reward(completion_ids, **kwargs):
        return [[-float(t) for t in range(len(ids))] for ids in completion_ids]

    dataset = Dataset.from_dict({"prompt": ["The movie was", "I loved this film", "The food was", "A cat sat"] * 4})
    trainer = TokenGRPOTrainer(
        model=model,
        reward_funcs=length_reward,
        token_reward_funcs=[position_reward],
        args=args,
        train_dataset=dataset,
        peft_config=peft_config,
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand the heap freed while loading/quantizing back to the OS
    before_step = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:  # reset VmHWM (peak RSS) to the current RSS
        clear.write("5")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    result = {
        "arm": arm,
        "trainable_parameters": trainable,
        "baseline_mib": baseline / 1024,
        "before_step_mib": before_step / 1024,
        "peak_rss_mib": _rss_kib("VmHWM") / 1024,
        "step_seconds": seconds,
    }
    if cuda:
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def estimate(batch: int = 8, prompt: int = 256, completion: int = 512, lora_r: int = 16) -> list[dict]:
    """Computed (not measured) GPU memory in GB of one GRPO step for ``ESTIMATE_MODELS``: 4-bit + LoRA and full FT.

    4-bit: 0.516 B per linear weight (NF4 + double quant), 4 B per embedding/LM-head weight (fp32 after
    `prepare_model_for_kbit_training`), 8 B per LoRA weight (bf16 weight, grad, AdamW m and v). Full FT: 16 B per
    weight (fp32 weight, grad, AdamW m and v). Both: activations with gradient checkpointing (bf16 hidden state per
    layer and token + one layer recomputed), the generation KV cache, and 1 GB of CUDA context and allocator slack.
    """
    rows = []
    tokens = batch * (prompt + completion)
    for name, (h, inter, layers, heads, kv, vocab, tied) in ESTIMATE_MODELS.items():
        head_dim = h // heads
        shapes = [(h, h), (h, kv * head_dim), (h, kv * head_dim), (h, h), (h, inter), (h, inter), (inter, h)]
        linear = layers * sum(i * o for i, o in shapes)
        lora = layers * sum(lora_r * (i + o) for i, o in shapes)
        embed = vocab * h * (1 if tied else 2)
        activations = tokens * (2 * h * layers + 2 * (10 * h + 3 * inter)) + 2 * layers * kv * head_dim * tokens * 2
        fixed = activations + 1e9
        qlora = NF4_BYTES * linear + EMBED_BYTES * embed + LORA_BYTES * lora + fixed
        full = FULL_BYTES * (linear + embed) + fixed
        rows.append(
            {"model": name, "params_b": (linear + embed) / 1e9, "qlora_gb": qlora / 1e9, "full_gb": full / 1e9}
        )
    return rows


def print_estimate() -> None:
    print("| model | params | 4-bit + LoRA (GB) | full FT fp32 AdamW (GB) | 8 GB | 12 GB | 24 GB |")
    print("|---|---|---|---|---|---|---|")
    for row in estimate():
        fits = ["4-bit" if row["qlora_gb"] <= 0.9 * card else "no" for card in (8, 12, 24)]
        fits = [("4-bit + full" if row["full_gb"] <= 0.9 * card else f) for f, card in zip(fits, (8, 12, 24))]
        print(
            f"| {row['model']} | {row['params_b']:.2f} B | {row['qlora_gb']:.1f} | {row['full_gb']:.1f} | "
            + " | ".join(fits)
            + " |"
        )


def _child(argv: list[str]) -> dict:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *argv], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, choices=list(SIZES))
    parser.add_argument("--arms", nargs="+", default=["full", "qlora"], choices=["full", "qlora"])
    parser.add_argument("--completion-length", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2, help="per-device batch (completions) of the step")
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--make-checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--estimate", action="store_true", help="print the computed GPU table and exit")
    args = parser.parse_args()
    if args.estimate:
        return print_estimate()
    if args.make_checkpoint:
        return make_checkpoint(args.make_checkpoint, args.checkpoint)
    if args.arm:
        return print(json.dumps(run_arm(args.arm, args.checkpoint, args.completion_length, args.batch)))

    import platform

    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}, one torch thread")
    ratio = None
    for index, size in enumerate(args.sizes):
        with tempfile.TemporaryDirectory(prefix=f"memory-{size}-") as checkpoint:
            parameters = _child(["--make-checkpoint", size, "--checkpoint", checkpoint])["parameters"]
            arms = args.arms if index % 2 == 0 else list(reversed(args.arms))  # interleave the order
            results = {}
            for arm in arms:
                results[arm] = _child(
                    [
                        "--arm",
                        arm,
                        "--checkpoint",
                        checkpoint,
                        "--completion-length",
                        str(args.completion_length),
                        "--batch",
                        str(args.batch),
                    ]
                )
                r = results[arm]
                cuda = f", cuda peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
                print(
                    f"{size} ({parameters / 1e6:.0f}M params) {arm:5s}: peak RSS {r['peak_rss_mib']:.0f} MiB "
                    f"(before step {r['before_step_mib']:.0f}, python+torch baseline {r['baseline_mib']:.0f}){cuda}, "
                    f"trainable {r['trainable_parameters'] / 1e6:.2f}M, step {r['step_seconds']:.1f} s",
                    flush=True,
                )
            if "full" in results and "qlora" in results:
                ratio = results["qlora"]["peak_rss_mib"] / results["full"]["peak_rss_mib"]
                line = f"{size}: qlora/full peak RSS = {ratio:.3f}"
                if "cuda_peak_mib" in results["full"]:  # on a GPU the ratio of GPU memory is the one that matters
                    ratio = results["qlora"]["cuda_peak_mib"] / results["full"]["cuda_peak_mib"]
                    line += f", cuda max_memory_allocated = {ratio:.3f}"
                print(line, flush=True)
    if ratio is not None:
        print(f"memory_ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
