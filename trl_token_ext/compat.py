"""Work-arounds for tested incompatibilities between the libraries under TRL (see docs/trl_internals.md)."""

from __future__ import annotations

from typing import Any


def keep_bnb_4bit_trainable_on_cpu(model: Any) -> int:
    """Stop bitsandbytes from repacking a training model's 4-bit weights into its CPU inference layout.

    On a CPU with AVX512-BF16, ``bnb.nn.Linear4bit`` converts its weights to a packed inference layout the first
    time it runs in eval mode on an input without grad (TRL's generation with transformers >= 5.24) and never converts
    them back; the next training forward then takes the inference kernel and fails with "a view of a leaf Variable
    that requires grad is being used in an in-place operation". A model that is trained keeps the trainable layout.
    Returns the number of 4-bit layers changed (0 without bitsandbytes or 4-bit layers).
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed
