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


def _packable_on_cpu(module: Any) -> bool:
    """Whether bitsandbytes' CPU packing (``_convert_weight_packed_for_cpu``) can take this layer's shape: it needs
    whole quantization blocks along the input (in_features a multiple of the blocksize) and out_features a multiple
    of its 32-row tiles; other shapes raise ``shape '[N, 0]' is invalid`` at the first eval forward."""
    state = getattr(getattr(module, "weight", None), "quant_state", None)
    if state is None or getattr(state, "shape", None) is None or len(state.shape) != 2:
        return True
    out_features, in_features = int(state.shape[0]), int(state.shape[1])
    blocksize = int(getattr(state, "blocksize", 64))
    return in_features >= blocksize and in_features % blocksize == 0 and out_features % 32 == 0


def keep_bnb_4bit_inference_working_on_cpu(model: Any) -> int:
    """Turn bitsandbytes' CPU inference packing off for the 4-bit layers whose shape it cannot pack.

    Frozen scorers (judges, classifiers) keep the faster packed CPU kernel where it works; a layer narrower than one
    quantization block (tiny test models, some heads) keeps the plain NF4 kernel. Returns the number of layers changed.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False) and not _packable_on_cpu(module):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed
