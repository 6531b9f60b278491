"""`ModelScorer`: the keyword arguments every model-backed scorer takes, checked once before its model loads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from trl_token_ext.choices import Placement
from trl_token_ext.models import ScorerModelArgs
from trl_token_ext.scorers._common import TokenScorer, check_placement


@dataclass(eq=False, repr=False)
class ModelScorer(TokenScorer):
    """Base of the scorers backed by a model: a dataclass whose keyword-only fields are shared by all of them.

    A subclass is a ``@dataclass(eq=False, repr=False)`` (identity equality, so it stays hashable; the name-only
    ``repr``) that declares its positional fields (``model``, ``tokenizer``, ...) and its own keyword-only ones,
    checks them in ``_check`` and loads its model in ``_load``. Construction runs the shared checks, ``_check``,
    then ``_load``, so a bad argument is refused before any model loads.

    Args:
        placement: how a score reaches the policy tokens (`trl_token_ext.choices.Placement`; defaults differ).
        max_length: model tokens per input (None: the model's maximum).
        batch_size: inputs per forward pass (an int >= 1).
        model_init_kwargs: how `trl_token_ext.models.load_scorer_model` loads a model given by id or folder: a
            `trl_token_ext.models.ScorerModelArgs` or a dict of its fields (``dtype``, ``device``,
            ``quantization_config``, ``load_in_4bit``, ``trust_remote_code``, ``model_kwargs``); coerced to one.
        name: ``__name__`` used in logs (default: the class's ``default_name``).
    """

    _: KW_ONLY
    placement: Placement = "split"
    max_length: int | None = None
    batch_size: int = 16
    model_init_kwargs: ScorerModelArgs | Mapping[str, Any] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        TokenScorer.__init__(self, self.name)
        self.placement = check_placement(self.placement, self.__name__)
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"{self.__name__}: batch_size must be an int >= 1, got {self.batch_size!r}.")
        self.model_init_kwargs = ScorerModelArgs.coerce(self.model_init_kwargs, self.__name__)
        self._check()
        self._load()

    def _check(self) -> None:
        """Refuse bad values of the subclass's own arguments (runs before ``_load``)."""

    def _load(self) -> None:
        """Load the model (and tokenizer) the scorer runs."""
        raise NotImplementedError
