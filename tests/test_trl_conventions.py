"""TRL conventions users rely on: Hub tags, HF-style `Parameters:` docstrings, the completions table."""

from __future__ import annotations

import math
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pandas as pd
import pytest
from trainer_helpers import grpo_args, length_reward

from trl_token_ext import TokenGRPOConfig, TokenGRPOTrainer, TokenRLOOConfig, TokenRLOOTrainer
from trl_token_ext.config import TokenRewardConfigMixin


@pytest.mark.parametrize("config_class", [TokenGRPOConfig, TokenRLOOConfig])
def test_config_docstring_documents_every_token_field_with_its_default(config_class):
    doc = config_class.__doc__
    assert "Parameters:" in doc
    for field in fields(TokenRewardConfigMixin):
        assert field.default is not MISSING
        default = f'"{field.default}"' if isinstance(field.default, str) else str(field.default)
        assert re.search(rf"\n\s+{field.name} \(`[^\n]*defaults to `{re.escape(default)}`\):\n", doc), field.name


def every_token(completion_ids, **kwargs):
    """Token reward 2.0 on every token of even rows, None (not scored) on odd rows."""
    return [None if i % 2 else [2.0] * len(ids) for i, ids in enumerate(completion_ids)]


@pytest.mark.parametrize(
    "trainer_class,config_class,tag",
    [(TokenGRPOTrainer, TokenGRPOConfig, "grpo"), (TokenRLOOTrainer, TokenRLOOConfig, "rloo")],
)
def test_hub_tags_and_token_reward_column_in_completions_table(
    trainer_class, config_class, tag, tiny_model_dir, prompt_dataset, tmp_path
):
    args = grpo_args(tmp_path, config_class=config_class, max_steps=1, log_completions=True)
    trainer = trainer_class(
        model=tiny_model_dir,
        reward_funcs=[length_reward],
        token_reward_funcs=[every_token],
        args=args,
        train_dataset=prompt_dataset,
    )
    assert {"trl", tag, "trl-token-ext"} <= set(trainer.model.model_tags)
    trainer.train()
    # TRL builds the completions table (sent to W&B / trackio) from `_logs["extra"]`; GRPO also writes it as parquet.
    values = list(trainer._logs["extra"]["token_reward"])
    if tag == "grpo":
        table = pd.read_parquet(Path(tmp_path) / "completions" / "completions_00001.parquet")
        assert "token_reward" in table.columns
        values = table["token_reward"].tolist()
    # the per-completion mean token reward: 2.0 on even rows, missing on the rows the function did not score
    assert len(values) == 6 and values[0::2] == [2.0, 2.0, 2.0]
    assert all(v is None or math.isnan(v) for v in values[1::2])


def test_4bit_layers_keep_their_trainable_layout_on_cpu():
    """bitsandbytes repacks Linear4bit weights for CPU inference (never undone) when this flag is set; the trainers
    clear it on the policy (tests/test_cli.py's 4-bit run fails without it on transformers 5.24, see
    docs/trl_internals.md)."""
    import torch

    from trl_token_ext.compat import keep_bnb_4bit_trainable_on_cpu

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[0].support_avx512bf16_for_cpu = True
    assert keep_bnb_4bit_trainable_on_cpu(model) == 1 and model[0].support_avx512bf16_for_cpu is False
    assert keep_bnb_4bit_trainable_on_cpu(model) == 0


def test_4bit_scorers_keep_cpu_packing_only_where_bitsandbytes_can_pack():
    """bitsandbytes' CPU inference packing needs whole blocks along in_features and 32-row tiles; narrower layers
    (tiny models) keep the plain NF4 kernel, packable ones keep the fast packed kernel."""
    from types import SimpleNamespace

    import torch

    from trl_token_ext.compat import keep_bnb_4bit_inference_working_on_cpu

    def layer(out_features, in_features, blocksize=64):
        module = torch.nn.Module()
        module.weight = SimpleNamespace(
            quant_state=SimpleNamespace(shape=(out_features, in_features), blocksize=blocksize)
        )
        module.support_avx512bf16_for_cpu = True
        return module

    model = torch.nn.ModuleDict(
        {
            "narrow": layer(32, 32),
            "ragged": layer(64, 96),
            "rows": layer(40, 64),
            "ok": layer(64, 128),
            "ok2": layer(32, 64),
        }
    )
    assert keep_bnb_4bit_inference_working_on_cpu(model) == 3
    assert [name for name, m in model.items() if m.support_avx512bf16_for_cpu] == ["ok", "ok2"]
    assert keep_bnb_4bit_inference_working_on_cpu(model) == 0
