"""PRIME: steps to an outcome threshold with an online implicit PRM (outcome + process rewards) vs outcome only.

Task (verifiable, sparse outcome): a tiny random policy should write tokens from a fixed target set
(``--target-share`` of the vocabulary, drawn per seed). The outcome is binary: 1 when at least ``--success-share`` of
a completion's ``--completion-length`` tokens are target tokens, else 0 — about 7 % of the initial
policy's completions, so most groups start with no success at all (PRIME's regime: sparse 0/1 rewards, credit spread
over many tokens).
Nobody tells either arm which tokens count:

* outcome arm — stock ``trl.GRPOTrainer`` on the 0/1 outcome;
* PRIME arm — ``TokenGRPOTrainer`` on the same 0/1 outcome plus the token reward of an ``OnlineImplicitPRM`` on a
  copy of the initial policy (reference = adapter disabled), trained on every generation batch's outcome labels with
  PRIME's cross-entropy, then scoring it (``--prm-update before``, PRIME's). What the PRM trains (``--prm-head``):
  ``bias`` (default) only a per-token output bias b_v, zero at first — a unigram PRM, r_t = β·(b_{y_t} − logsumexp
  shift); ``copy`` a LoRA adapter (r 8, all linear layers) plus a trainable copy of the output layer. Its optimizer
  (``--prm-optimizer``): plain SGD (default here, through ``optimizer_factory``) or the PRM's default AdamW, whose
  per-coordinate normalization gives a token seen once the same step as a token seen a hundred times.

Same model, data, optimizer, learning rate and seed in both arms; the arms alternate seed by seed. The score of a
step is the success rate of that step's batch; "steps to threshold" is the first step whose 3-step moving average
reaches ``--threshold`` (``--max-steps`` + 1 if never). The PRM's learning is shown by the correlation, before each
update, between its sequence reward z_i = β·Σ_t log π_φ/π_ref and the outcome (first vs last steps); the quality of
its credit by the "token credit": the correlation, over a batch's tokens, of r_t with the true credit 1[y_t ∈ target]
(both centered per group, as group normalization sees them), next to the same for the outcome spread over the tokens.
Diagnostics (``--credit``): ``oracle`` replaces the PRM by the true credit (a perfect PRM from step 1: the ceiling of
this design, not PRIME); ``noise`` by Gaussian noise (the control: extra token-level randomness, no information).

The settings were chosen on seeds 0–7; the default run is on seeds 8–31, which played no part in choosing them.

    python benchmarks/prime.py [--seeds 24] [--first-seed 8] [--credit prm|oracle|noise] [--prm-optimizer sgd|adamw]

Last line: ``prime_ratio: <mean steps PRIME arm / mean steps outcome arm>`` (lower is better; target ≤ 0.6).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

import torch

torch.set_num_threads(1)  # tiny models on 2 shared cores: one thread is several times faster than two


def steps_to_threshold(curve: list[float], threshold: float, window: int = 3) -> int | None:
    """First step (1-based) whose trailing ``window``-step mean reaches ``threshold``; None if none does."""
    for step in range(1, len(curve) + 1):
        recent = curve[max(0, step - window) : step]
        if len(recent) == window and sum(recent) / window >= threshold:
            return step
    return None


def run_arm(arm: str, seed: int, args: argparse.Namespace, model_dir: str, target: set[int]):
    """Train one arm until the threshold (or ``max_steps``); returns the success-rate curve and PRM correlations."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer

    curve: list[float] = []

    def success(completion_ids, **kwargs) -> list[float]:
        shares = [sum(t in target for t in ids) / max(1, len(ids)) for ids in completion_ids]
        values = [float(share >= args.success_share) for share in shares]
        curve.append(sum(values) / len(values))
        return values

    class StopAtThreshold(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            if steps_to_threshold(curve, args.threshold) is not None:
                control.should_training_stop = True
            return control

    common = dict(
        output_dir=tempfile.mkdtemp(prefix=f"prime-{arm}-"),
        per_device_train_batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.completion_length,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        logging_steps=10_000,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        bf16=False,  # TRL's default bf16 autocast is emulated (slow) on CPUs without native bf16
        seed=seed,
    )
    dataset = Dataset.from_dict({"prompt": ["The movie was", "I loved this", "The food was", "A cat sat"] * 64})
    correlations: list[float] = []
    credit: list[float] = []
    outcome_credit: list[float] = []
    if arm == "outcome":
        trainer = GRPOTrainer(model=model_dir, reward_funcs=success, args=GRPOConfig(**common), train_dataset=dataset)
    else:
        token_funcs = [token_credit(args, seed, model_dir, target, correlations, credit, outcome_credit)]
        trainer = TokenGRPOTrainer(
            model=model_dir,
            reward_funcs=success,
            token_reward_funcs=token_funcs,
            args=TokenGRPOConfig(
                **common,
                token_advantage_mode=args.mode,
                token_advantage_coef=args.token_coef,
                token_reward_normalization=args.normalization,
                token_advantage_baseline=args.baseline,
            ),
            train_dataset=dataset,
        )
    trainer.add_callback(StopAtThreshold())
    trainer.remove_callback(PrinterCallback)  # keep the output to one line per run
    trainer.train()
    return curve, correlations, credit, outcome_credit


def token_credit(args, seed, model_dir, target, correlations, credit, outcome_credit):
    """The PRIME arm's token reward function (``--credit``): the online PRM, recording its correlation with the
    outcome and its token credit; or a diagnostic — the true credit (``oracle``) or Gaussian noise (``noise``)."""
    from peft import LoraConfig

    from trl_token_ext.scorers import OnlineImplicitPRM

    if args.credit == "oracle":  # ceiling: the true token credit 1[y_t ∈ target] instead of the PRM's (not PRIME)

        def true_credit(completion_ids, **kwargs):
            return [[float(t in target) for t in ids] for ids in completion_ids]

        return recording_credit(true_credit, target, args.num_generations, credit, outcome_credit)
    if args.credit == "noise":  # control: token rewards with no information, at the same normalized scale
        generator = torch.Generator().manual_seed(seed)

        def noise(completion_ids, **kwargs):
            return [torch.randn(len(ids), generator=generator).tolist() for ids in completion_ids]

        return recording_credit(noise, target, args.num_generations, credit, outcome_credit)
    torch.manual_seed(seed)
    # "copy": the tiny model's tied, small embeddings bound how far LoRA on the linear layers can move a token's
    # log-prob; a trainable copy of the output layer (modules_to_save) lets the PRM raise or lower single tokens.
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", modules_to_save=["lm_head"])
    prm_model = model_dir
    if args.prm_head == "bias":  # a unigram PRM: only a per-token output bias b_v (zero at first) is trained
        from transformers import AutoModelForCausalLM

        prm_model = AutoModelForCausalLM.from_pretrained(model_dir)
        head = prm_model.lm_head
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        with torch.no_grad():
            biased.weight.copy_(head.weight)
            biased.bias.zero_()
        prm_model.lm_head, prm_model.config.tie_word_embeddings = biased, False
        lora = LoraConfig(r=1, target_modules=["q_proj"], modules_to_save=["lm_head"])
    prm = OnlineImplicitPRM(
        prm_model,
        peft_config=lora,
        beta=args.prm_beta,
        learning_rate=args.prm_learning_rate,
        optimizer_factory=prm_optimizer(args),
        update_epochs=args.prm_epochs,
        update=args.prm_update,
        logit_bias=args.prm_logit_bias,
        model_init_kwargs={"device": "cpu"},
    )
    if args.prm_head == "bias":
        for name, param in prm.model.named_parameters():
            param.requires_grad_(name.endswith("modules_to_save.default.bias"))
    update = prm.update

    def recorded_update(*update_args, **update_kwargs):
        stats = update(*update_args, **update_kwargs)
        correlations.append(stats.get("correlation", float("nan")))
        return stats

    prm.update = recorded_update
    prm.score = recording_credit(prm.score, target, args.num_generations, credit, outcome_credit)
    return prm


def recording_credit(func, target: set[int], group_size: int, credit: list[float], outcome_credit: list[float]):
    """``func`` (a token reward function) that also appends its token credit, and the outcome's, to the lists."""

    def recorded(*func_args, **kwargs):
        rewards = func(*func_args, **kwargs)
        completion_ids = kwargs["completion_ids"] if "completion_ids" in kwargs else func_args[2]
        credit.append(credit_correlation(rewards, completion_ids, target, group_size))
        outcome = kwargs["outcome_rewards"].weighted.tolist()
        as_tokens = [[value] * len(ids) for value, ids in zip(outcome, completion_ids)]
        outcome_credit.append(credit_correlation(as_tokens, completion_ids, target, group_size))
        return rewards

    return recorded


def prm_optimizer(args: argparse.Namespace):
    """None (the PRM's default AdamW) or a factory of plain SGD at ``--prm-learning-rate``."""
    if args.prm_optimizer == "adamw":
        return None
    return lambda params: torch.optim.SGD(params, lr=args.prm_learning_rate)


def credit_correlation(rewards, completion_ids, target: set[int], group_size: int) -> float:
    """Pearson correlation, over the batch's tokens, of the token reward with the true token credit 1[y_t ∈ target],
    both centered within each prompt's group (what group normalization leaves of them); NaN if undefined."""
    r_all, hit_all = [], []
    for start in range(0, len(completion_ids), group_size):
        r = torch.tensor([v for row in rewards[start : start + group_size] for v in row], dtype=torch.float64)
        hit = torch.tensor(
            [float(t in target) for ids in completion_ids[start : start + group_size] for t in ids],
            dtype=torch.float64,
        )
        r_all.append(r - r.mean())
        hit_all.append(hit - hit.mean())
    r, hit = torch.cat(r_all), torch.cat(hit_all)
    if r.std() == 0 or hit.std() == 0:
        return float("nan")
    return float(torch.corrcoef(torch.stack([r, hit]))[0, 1])


def ratio_interval(prime_steps: list[int], outcome_steps: list[int], draws: int = 10_000) -> tuple[float, float]:
    """95 % percentile bootstrap interval of mean(prime) / mean(outcome), resampling seeds (pairs) with replacement."""
    rng = random.Random(0)
    pairs = list(zip(prime_steps, outcome_steps))
    ratios = []
    for _ in range(draws):
        sample = [rng.choice(pairs) for _ in pairs]
        ratios.append(sum(p for p, _ in sample) / sum(o for _, o in sample))
    ratios.sort()
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def mean_finite(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.mean(finite) if finite else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=8, help="seeds first-seed … first-seed + seeds − 1")
    parser.add_argument("--max-steps", type=int, default=120)
    parser.add_argument("--threshold", type=float, default=0.7, help="success rate to reach (3-step mean)")
    parser.add_argument("--target-share", type=float, default=0.1, help="share of the vocabulary that counts")
    parser.add_argument("--success-share", type=float, default=0.18, help="share of target tokens for outcome 1")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=48)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--mode", default="immediate", choices=["immediate", "reward_to_go", "min"])
    parser.add_argument("--token-coef", type=float, default=0.6)
    parser.add_argument("--normalization", default="group", choices=["group", "batch", "none"])
    parser.add_argument("--baseline", default="token_mean", choices=["position", "token_mean"],
                        help="token_advantage_baseline (token_mean: chosen on seeds 0-7, documented)")  # fmt: skip
    parser.add_argument("--prm-beta", type=float, default=1.0)
    parser.add_argument(
        "--prm-learning-rate", type=float, default=3.0, help="3 suits the default SGD; with adamw use about 3e-2"
    )
    parser.add_argument(
        "--prm-head",
        default="bias",
        choices=["bias", "copy"],
        help="copy: LoRA r 8 + a trainable copy of the output layer; bias: only a per-token output bias (unigram PRM)",
    )
    parser.add_argument(
        "--credit",
        default="prm",
        choices=["prm", "oracle", "noise"],
        help="the PRIME arm's token reward: the online PRM; diagnostics: the true credit (ceiling), Gaussian noise",
    )
    parser.add_argument(
        "--prm-optimizer",
        default="sgd",
        choices=["adamw", "sgd"],
        help="the PRM's optimizer (adamw: OnlineImplicitPRM's default, PRIME's; sgd: optimizer_factory)",
    )
    parser.add_argument(
        "--prm-update",
        default="before",
        choices=["before", "after"],
        help="update the PRM on a batch before scoring it (PRIME's) or after (scores only from earlier batches)",
    )
    parser.add_argument("--prm-epochs", type=int, default=1, help="PRM optimizer steps per batch")
    parser.add_argument(
        "--prm-logit-bias",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="learn an offset b of the PRM's outcome logit (the base rate of the sparse 0/1 labels)",
    )
    args = parser.parse_args()

    from trl_token_ext.testing import build_tiny_tokenizer, save_tiny_causal_lm

    tokenizer = build_tiny_tokenizer()
    special = set(tokenizer.all_special_ids)
    vocabulary = [i for i in range(len(tokenizer)) if i not in special]
    steps: dict[str, list[int]] = {"outcome": [], "prime": []}
    seconds: dict[str, float] = {"outcome": 0.0, "prime": 0.0}
    early, late, credits = [], [], []
    credit_source = "PRM" if args.credit == "prm" else f"{args.credit.upper()} credit"
    print(
        f"tiny policy, {args.batch_size} completions × {args.completion_length} tokens per step, lr "
        f"{args.learning_rate}, outcome 1 at ≥ {args.success_share} target tokens, threshold {args.threshold}; "
        f"token reward {credit_source}; PRM β {args.prm_beta} {args.prm_optimizer} lr {args.prm_learning_rate} "
        f"epochs {args.prm_epochs} update {args.prm_update} head {args.prm_head} logit bias {args.prm_logit_bias}; "
        f"λ {args.token_coef}, token mode {args.mode}, baseline {args.baseline}, normalization {args.normalization}, "
        f"max {args.max_steps} steps"
    )
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        model_dir = str(save_tiny_causal_lm(tempfile.mkdtemp(prefix="prime-model-"), seed=seed))
        target = set(random.Random(seed).sample(vocabulary, max(1, round(args.target_share * len(vocabulary)))))
        order = ["outcome", "prime"] if seed % 2 == 0 else ["prime", "outcome"]  # interleaved arms
        for arm in order:
            start = time.perf_counter()
            curve, correlations, credit, outcome_credit = run_arm(arm, seed, args, model_dir, target)
            seconds[arm] += time.perf_counter() - start
            reached = steps_to_threshold(curve, args.threshold)
            steps[arm].append(reached if reached is not None else args.max_steps + 1)
            shown = reached if reached is not None else f">{args.max_steps}"
            line = (
                f"seed {seed} {arm:7s}: steps to threshold {shown}, success first {curve[0]:.2f} last {curve[-1]:.2f}"
            )
            if correlations:
                early.append(mean_finite(correlations[:3]))
                late.append(mean_finite(correlations[-3:]))
                line += f", PRM corr(z, outcome) first 3 steps {early[-1]:.2f}, last 3 steps {late[-1]:.2f}"
            if credit:
                credits.append(mean_finite(credit))
                line += f", token credit first 3 steps {mean_finite(credit[:3]):.2f}, mean {credits[-1]:.2f}"
                line += f" (outcome's {mean_finite(outcome_credit):.2f})"
            print(line, flush=True)
    for arm in ("outcome", "prime"):
        print(f"{arm:7s}: mean steps {statistics.mean(steps[arm]):.1f} {steps[arm]}, {seconds[arm]:.0f} s")
    learned = f"first steps {mean_finite(early):.2f}, last steps {mean_finite(late):.2f}"
    print(f"PRM correlation with the outcome (before each update): {learned}; token credit {mean_finite(credits):.2f}")
    faster = sum(p < o for p, o in zip(steps["prime"], steps["outcome"]))
    ties = sum(p == o for p, o in zip(steps["prime"], steps["outcome"]))
    low, high = ratio_interval(steps["prime"], steps["outcome"])
    print(f"PRIME arm faster on {faster} of {len(steps['prime'])} seeds ({ties} tied); ratio 95 % interval over seeds "
          f"[{low:.3f}, {high:.3f}]")  # fmt: skip
    print(f"prime_ratio: {statistics.mean(steps['prime']) / statistics.mean(steps['outcome']):.3f}")


if __name__ == "__main__":
    main()
