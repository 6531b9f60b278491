"""Views of a PEFT model's base: adapters switched off for a block, and a judge that shares the policy's weights."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` as its base model: every PEFT adapter layer *and* every ``modules_to_save`` copy (PEFT's
    ``AuxiliaryTrainingWrapper``s, e.g. a trained copy of the output layer) off, eval mode, no grad; all restored
    after, including the wrapped parameters' ``requires_grad``.

    Works on a `PeftModel` and on a base model that PEFT injected adapters into in place (what TRL does with a
    ``peft_config``), so a scorer holding the base model keeps scoring with the frozen base after the trainer wraps it.
    """
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        layers, wrappers = [], []
    else:
        try:
            from peft.utils.other import AuxiliaryTrainingWrapper
        except ImportError:  # older PEFT: ModulesToSaveWrapper is the only such wrapper
            from peft.utils.other import ModulesToSaveWrapper as AuxiliaryTrainingWrapper
        layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
        wrappers = [module for module in model.modules() if isinstance(module, AuxiliaryTrainingWrapper)]
    previous = [layer.disable_adapters for layer in layers]
    previous_wrappers = [wrapper.disable_adapters for wrapper in wrappers]
    grads = [(param, param.requires_grad) for module in (*layers, *wrappers) for param in module.parameters()]
    was_training = model.training
    for module in (*layers, *wrappers):
        module.enable_adapters(False)
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for layer, disabled in zip(layers, previous):
            layer.enable_adapters(not disabled)
        for wrapper, disabled in zip(wrappers, previous_wrappers):
            wrapper.enable_adapters(not disabled)
        for param, requires_grad in grads:
            param.requires_grad_(requires_grad)
        model.train(was_training)


class SharedBaseModel:
    """A frozen view of the policy's base model for a judge/PRM that uses the same checkpoint (no second copy).

    Calling it (or ``.forward``) runs the policy's weights with every adapter disabled, in eval mode and without
    gradients; other attributes (``config``, ``device``, ``dtype``, ``generate`` ...) come from the wrapped model.
    Input/output shapes are the wrapped model's, e.g. ``input_ids`` (B, L) -> ``logits`` (B, L, V).
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with adapters_disabled(self.model) as model:
            return model(*args, **kwargs)

    forward = __call__

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with adapters_disabled(self.model) as model:
            return model.generate(*args, **kwargs)

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        """Detached views of the policy's parameters (device/dtype look-ups): a scorer freezing "its" model with
        ``requires_grad_(False)`` must not freeze the policy's trainable adapter."""
        return (parameter.detach() for parameter in self.model.parameters(recurse))

    def eval(self) -> SharedBaseModel:
        """No-op: every call already runs in eval mode; the policy's own train/eval state is left alone."""
        return self

    def train(self, mode: bool = True) -> SharedBaseModel:
        return self

    def requires_grad_(self, requires_grad: bool = True) -> SharedBaseModel:
        return self

    def __getattr__(self, name: str) -> Any:
        if name == "model":  # not set yet (during unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"SharedBaseModel({type(self.model).__name__})"


def has_adapter(model: Any) -> bool:
    """True when ``model`` carries a PEFT adapter (a `PeftModel`, or adapter layers PEFT/transformers injected)."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return False
    return any(isinstance(module, BaseTunerLayer) for module in model.modules())
