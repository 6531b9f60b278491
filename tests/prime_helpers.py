"""Hand computations shared by the distillation and online-PRM tests."""

from __future__ import annotations

import torch


def logps_by_hand(model, tokenizer, prompt, completion_ids, grad=False):
    """(T,) log p(c_j | prompt, c_<j) of each completion token: one forward pass, log-softmax, gather."""
    prefix = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([prefix + list(completion_ids)])
    with torch.set_grad_enabled(grad):
        logits = model(input_ids=ids).logits[0].float()
    positions = torch.arange(len(prefix), ids.size(1))
    return logits[positions - 1].log_softmax(-1)[torch.arange(len(positions)), ids[0, positions]]
