"""TokenHeatmapCallback shows the advantages the trainer used (GRPO and RLOO, None rewards, truncated completions)."""

from __future__ import annotations

import pytest
import torch
from trainer_helpers import grpo_args, length_reward

from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer, TokenRLOOConfig, TokenRLOOTrainer
from trl_token_ext.visualize import TokenHeatmapCallback


def first_unscored(completion_ids, **kwargs):
    """Token reward: None for the first completion of the batch, else +1 on even ids and -1 on odd ids."""
    return [None if b == 0 else [1.0 if t % 2 == 0 else -1.0 for t in ids] for b, ids in enumerate(completion_ids)]


@pytest.mark.parametrize(
    "trainer_class, config_class", [(TokenGRPOTrainer, TokenGRPOConfig), (TokenRLOOTrainer, TokenRLOOConfig)]
)
def test_callback_advantages_are_the_trainers(
    trainer_class, config_class, tiny_model_dir, tiny_tokenizer, prompt_dataset, tmp_path
):
    callbacks = {value: TokenHeatmapCallback(tmp_path / value, value=value) for value in ("reward", "advantage")}
    # EOS made likely (its logit + 2.5) so that a batch mixes finished and truncated (masked) completions.
    args = grpo_args(
        tmp_path / "run",
        config_class=config_class,
        max_steps=1,
        mask_truncated_completions=True,
        token_reward_weights=[2.0],
        generation_kwargs={"sequence_bias": [[[tiny_tokenizer.eos_token_id], 2.5]]},
        # RLOO: two passes over the batch, so the per-token loss needs the old log-probs computed at generation.
        num_iterations=2 if trainer_class is TokenRLOOTrainer else 1,
    )
    trainer = trainer_class(
        model=tiny_model_dir,
        reward_funcs=length_reward,
        token_reward_funcs=[first_unscored],
        args=args,
        train_dataset=prompt_dataset,
        callbacks=list(callbacks.values()),
    )
    outputs = []
    generate = trainer._generate_and_score_completions

    def spy(inputs):
        outputs.append(generate(inputs))
        return outputs[-1]

    trainer._generate_and_score_completions = spy
    trainer.train()
    output = outputs[-1]
    _, ids, advantages = callbacks["advantage"].combined_values()
    _, _, rewards = callbacks["reward"].combined_values()
    finished = [tiny_tokenizer.eos_token_id in row for row in ids]
    assert any(finished) and not all(finished)  # truncated and finished completions in the batch
    assert output["advantages"].dim() == 2
    for b, row in enumerate(ids):
        expected = output["advantages"][b, : len(row)]
        assert advantages[b] == pytest.approx(expected.tolist(), abs=1e-6)
        if not finished[b]:  # mask_truncated_completions: a truncated completion carries no advantage
            assert advantages[b] == [0.0] * len(row)
        expected_reward = [0.0] * len(row) if b == 0 else [2.0 if t % 2 == 0 else -2.0 for t in row]
        assert rewards[b] == pytest.approx(expected_reward)
    assert trainer.token_step_record.completion_ids == ids
    if trainer_class is TokenRLOOTrainer:
        # Off-policy: the explicitly computed old per-token log-probs sum to TRL's own per-sequence old log-probs.
        summed = (output["old_per_token_logps"] * output["completion_mask"]).sum(1)
        assert torch.allclose(summed, output["old_logps"], atol=1e-4)
