"""pytest plugin: run TRL's own GRPO/RLOO tests with trl-token-ext's trainers in place of the stock ones.

    PYTHONPATH=scripts/trl_dropin pytest -p trl_dropin_plugin tests/test_grpo_trainer.py ...

Loaded with ``-p`` it runs before any test module is imported, so ``from trl import GRPOConfig, GRPOTrainer`` in
TRL's test files binds our subclasses. It patches the public ``trl`` namespace and ``trl.trainer`` (the places test
files import from); the defining modules ``trl.trainer.grpo_trainer`` / ``rloo_trainer`` are left alone so that the
stock code and our subclasses still see the stock classes internally.
"""

from __future__ import annotations

SUBSTITUTIONS = {
    "GRPOTrainer": ("trl_token_ext", "TokenGRPOTrainer"),
    "GRPOConfig": ("trl_token_ext", "TokenGRPOConfig"),
    "RLOOTrainer": ("trl_token_ext", "TokenRLOOTrainer"),
    "RLOOConfig": ("trl_token_ext", "TokenRLOOConfig"),
}


def _install() -> dict[str, str]:
    import importlib

    import trl
    import trl.trainer

    done = {}
    for stock_name, (module_name, ours_name) in SUBSTITUTIONS.items():
        stock = getattr(trl, stock_name)
        ours = getattr(importlib.import_module(module_name), ours_name)
        assert issubclass(ours, stock), f"{ours_name} is not a subclass of trl.{stock_name}"
        for namespace in (trl, trl.trainer):
            setattr(namespace, stock_name, ours)
        done[stock_name] = f"{ours.__module__}.{ours.__qualname__}"
    return done


_SUBSTITUTED = _install()


def pytest_report_header(config):
    return "trl_dropin: " + ", ".join(f"trl.{k} -> {v}" for k, v in _SUBSTITUTED.items())


def pytest_collection_finish(session):
    # Guard against a test module having imported the stock classes before the patch (would silently test stock).
    import sys

    for name in ("tests.test_grpo_trainer", "tests.test_rloo_trainer"):
        module = sys.modules.get(name)
        if module is None:
            continue
        for stock_name in SUBSTITUTIONS:
            bound = getattr(module, stock_name, None)
            if bound is not None:
                qualname = f"{bound.__module__}.{bound.__qualname__}"
                assert qualname == _SUBSTITUTED[stock_name], f"{name}.{stock_name} is {qualname}, not substituted"
