"""Third-party messages the demo hides, and why each does not matter to its user.

* bitsandbytes ≥ 0.49 logs "Failed to load CPU gemm_4bit_forward from kernels-community ... pip install kernels"
  when it is imported (by peft) on a CPU with AVX-512 BF16: its optional fused kernel for *4-bit* CPU inference
  comes from the Hub package ``kernels``. The demo trains in fp32 unless ``--load_in_4bit``, so the message is
  hidden; with ``--load_in_4bit`` on such a CPU it stays (it then means: the 4-bit layers run bitsandbytes' slower
  built-in CPU kernel).
* transformers' load reports and progress bars, datasets' progress bars, FutureWarnings of transformers, trl and
  peft: the demo prints its own progress and summary.
"""

from __future__ import annotations

import logging
import warnings

BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_MESSAGE = "Failed to load CPU gemm_4bit_forward"


class _DropMessage(logging.Filter):
    """Drops the records whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_third_party(load_in_4bit: bool = False) -> None:
    """Hide the messages listed in the module docstring (call before importing peft / trl)."""
    logger = logging.getLogger(BNB_LOGGER)
    if not load_in_4bit and not any(isinstance(f, _DropMessage) for f in logger.filters):
        logger.addFilter(_DropMessage(BNB_MESSAGE))
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft)\.")
