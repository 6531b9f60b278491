"""The private TRL API the trainers override or call, as the installed TRL has it.

`make test-compat` runs this on the oldest and newest supported TRL: a TRL minor release that renames or re-signs
one of these fails here by name, before any training test does (docs/trl_internals.md lists what each is for).
"""

from __future__ import annotations

import inspect

import pytest
from trl import GRPOTrainer, RLOOTrainer

# (class, attribute, the leading parameters we pass positionally or by name)
PRIVATE_API = [
    (GRPOTrainer, "_calculate_rewards", ["self", "inputs", "prompts", "completions", "completion_ids_list"]),
    (RLOOTrainer, "_calculate_rewards", ["self", "inputs", "prompts", "completions", "completion_ids_list"]),
    (GRPOTrainer, "_generate_and_score_completions", ["self", "inputs"]),
    (RLOOTrainer, "_generate_and_score_completions", ["self", "inputs"]),
    (RLOOTrainer, "_compute_loss", ["self", "model", "inputs"]),
    (RLOOTrainer, "_get_per_token_logps_and_entropies", ["self", "model"]),
    (GRPOTrainer, "_log_completion_extra", ["self", "column", "values"]),
    (RLOOTrainer, "_log_completion_extra", ["self", "column", "values"]),
    (GRPOTrainer, "_log_metric", ["self", "name", "value"]),
    (GRPOTrainer, "get_off_policy_mask", ["advantages", "per_token_logps", "sampling_per_token_logps", "mask"]),
    (GRPOTrainer, "get_gamma_weights", ["advantages", "log_ratio_per_token", "mask", "importance_sampling_ratio"]),
]


@pytest.mark.parametrize("cls,name,params", PRIVATE_API, ids=lambda v: getattr(v, "__name__", str(v))[:40])
def test_private_method_has_the_signature_the_trainers_use(cls, name, params):
    method = getattr(cls, name, None)
    assert method is not None, f"{cls.__name__}.{name} is gone"
    signature = list(inspect.signature(method).parameters)
    assert signature[: len(params)] == params, f"{cls.__name__}.{name}{signature}"
