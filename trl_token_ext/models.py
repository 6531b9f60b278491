"""Load the policy and the scoring models for one consumer GPU: NF4 4-bit + LoRA, from TRL's `ModelConfig`.

The policy is returned as a (quantized) base model plus a `peft.LoraConfig`; hand both to the trainer
(``TokenGRPOTrainer(model=model, peft_config=peft_config, ...)``). TRL then wraps the model with the adapter and,
with ``beta > 0``, computes the reference log-probs with the adapter disabled: no second copy of the weights.

Scorer models (judges, PRMs, classifiers) load frozen, in 4-bit when asked; a scorer whose checkpoint is the policy's
base model reuses the policy's weights through `SharedBaseModel` (adapter disabled while it scores).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from trl_token_ext.compat import keep_bnb_4bit_inference_working_on_cpu
from trl_token_ext.extras import missing_extra
from trl_token_ext.shared_base import SharedBaseModel, adapters_disabled, has_adapter  # noqa: F401 (public here)

SCORER_TASKS = ("causal-lm", "sequence-classification", "token-classification", "feature-extraction")


def bitsandbytes_available() -> bool:
    """True when ``bitsandbytes`` imports (it is only imported when quantization is requested)."""
    try:
        importlib.import_module("bitsandbytes")
    except ImportError:
        return False
    return True


def kbit_device_map() -> dict[str, Any] | None:
    """Device map for a k-bit model: the whole model on this process's GPU (one copy per process), None on CPU.

    TRL < 1.0 shipped this as ``get_kbit_device_map``; it is rebuilt here from ``accelerate``'s process state.
    """
    if not torch.cuda.is_available():
        return None
    from accelerate import PartialState

    return {"": PartialState().local_process_index}


def compute_dtype(model_args: Any) -> str:
    """The dtype quantized layers compute in: ``model_args.dtype``, or bf16/fp32 (GPU/CPU) for ``auto``/None."""
    dtype = getattr(model_args, "dtype", None)
    if dtype in (None, "auto"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return dtype


def quantization_config(model_args: Any):
    """TRL's `get_quantization_config` (NF4/FP4, nested quant, compute dtype), after checking bitsandbytes is there.

    Returns a `transformers.BitsAndBytesConfig`, or None when neither ``load_in_4bit`` nor ``load_in_8bit`` is set.

    Raises:
        ImportError: 4-/8-bit requested without bitsandbytes installed (with the install command).
    """
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    if not bitsandbytes_available():
        flag = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit"
        raise missing_extra("bitsandbytes", "quantization", f"`{flag}=True`")
    from trl import get_quantization_config

    if model_args.dtype in (None, "auto"):
        import copy

        model_args = copy.copy(model_args)
        model_args.dtype = compute_dtype(model_args)
    return get_quantization_config(model_args)


def model_init_kwargs(model_args: Any, trust_remote_code: bool = False) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments from a `trl.ModelConfig` (as TRL's scripts build them)."""
    kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "trust_remote_code": trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    quant = quantization_config(model_args)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = kbit_device_map()
    return kwargs


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Sorted distinct last-component names of the model's linear layers (bitsandbytes ``Linear4bit`` included).

    Layers PEFT already wrapped count under their own name (``q_proj``), not their ``lora_A``/``base_layer`` parts.
    """
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # pragma: no cover - peft is needed for LoRA anyway
        BaseTunerLayer = ()  # noqa: N806
    inner = {"lora_A", "lora_B", "base_layer", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector"}
    names = set()
    for name, module in model.named_modules():
        if not name or inner & set(name.split(".")):
            continue
        if isinstance(module, (torch.nn.Linear, BaseTunerLayer)):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def check_lora_targets(model: torch.nn.Module, peft_config: Any) -> None:
    """Raise if the LoRA ``target_modules`` match no module of ``model``, listing the model's linear layer names.

    Uses PEFT's own matching rule (`check_target_module_exists`: suffix match for a list, full match for a regex).
    ``None`` (PEFT's per-architecture default) and ``"all-linear"`` are left to PEFT.
    """
    targets = getattr(peft_config, "target_modules", None)
    if targets is None or targets == "all-linear":
        return
    from peft.tuners.tuners_utils import check_target_module_exists

    if any(check_target_module_exists(peft_config, name) for name, _ in model.named_modules() if name):
        return
    raise ValueError(
        f"LoRA target_modules={targets!r} match no module of {type(model).__name__}. Its linear layers are "
        f"{linear_module_names(model)}; pass some of these (e.g. `--lora_target_modules q_proj v_proj`) or "
        "'all-linear'."
    )


def load_policy(model_args: Any, training_args: Any = None) -> tuple[Any, Any]:
    """Load the policy base model and its LoRA config from a `trl.ModelConfig`.

    4-bit (``load_in_4bit``): NF4 weights with the compute dtype of ``model_args.dtype``, then PEFT's
    `prepare_model_for_kbit_training` (fp32 norms/embeddings, input grads and, when ``training_args`` asks for it,
    gradient checkpointing with ``use_reentrant=False`` unless set). The LoRA config comes from TRL's
    `get_peft_config` and is checked against the model's modules.

    Returns:
        ``(model, peft_config)``: pass both to the trainer; ``peft_config`` is None without ``use_peft``.

    Raises:
        ValueError: 4-/8-bit without ``use_peft`` (quantized weights can't be trained), or LoRA target modules that
            match nothing. ImportError: bitsandbytes or peft missing.
    """
    from transformers import AutoModelForCausalLM

    if (model_args.load_in_4bit or model_args.load_in_8bit) and not model_args.use_peft:
        bits = 4 if model_args.load_in_4bit else 8
        raise ValueError(
            f"load_in_{bits}bit=True needs use_peft=True: {bits}-bit weights are frozen (they can't be trained), "
            "so only LoRA adapters on top of them can learn. Add `--use_peft` (and LoRA options) or drop "
            f"`--load_in_{bits}bit`."
        )
    if model_args.model_name_or_path is None:
        raise ValueError("model_name_or_path is required to load the policy (`--model_name_or_path`).")
    peft_config = _peft_config(model_args)
    trust_remote_code = bool(getattr(training_args, "trust_remote_code", False))
    kwargs = model_init_kwargs(model_args, trust_remote_code=trust_remote_code)
    extra = dict(getattr(training_args, "model_init_kwargs", None) or {})  # the user's wins, as in TRL's scripts
    if "quantization_config" in extra and "quantization_config" in kwargs:
        raise ValueError(
            "Quantization is set twice: `load_in_4bit`/`load_in_8bit` and `model_init_kwargs['quantization_config']`; "
            "keep one."
        )
    kwargs.update(extra)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **kwargs)
    if peft_config is not None:
        check_lora_targets(model, peft_config)
    if "quantization_config" in kwargs:
        from peft import prepare_model_for_kbit_training

        use_gc = bool(getattr(training_args, "gradient_checkpointing", False))
        gc_kwargs = dict(getattr(training_args, "gradient_checkpointing_kwargs", None) or {})
        gc_kwargs.setdefault("use_reentrant", False)  # reentrant checkpointing drops LoRA grads without input grads
        if training_args is not None and use_gc:
            training_args.gradient_checkpointing_kwargs = gc_kwargs
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=use_gc, gradient_checkpointing_kwargs=gc_kwargs
        )
    return model, peft_config


def _peft_config(model_args: Any):
    if not model_args.use_peft:
        return None
    from trl import get_peft_config

    return get_peft_config(model_args)


def same_checkpoint(a: str | None, b: str | None) -> bool:
    """True when two model ids/folders name the same checkpoint (folders compared by real path)."""
    if a is None or b is None:
        return False
    import os

    if os.path.exists(a) and os.path.exists(b):
        return os.path.realpath(a) == os.path.realpath(b)
    return a.rstrip("/") == b.rstrip("/")


def default_device() -> torch.device:
    """CUDA when available, else CPU: where a scorer model loaded by id/path runs unless told otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def nf4_config(skip_modules: list[str] | None = None, double_quant: bool = True):
    """The NF4 4-bit `transformers.BitsAndBytesConfig` scorers use for ``load_in_4bit=True`` (bf16 compute);
    ``skip_modules`` stay in full precision (a classifier's head); ``double_quant`` also quantizes the scales."""
    if not bitsandbytes_available():
        raise missing_extra("bitsandbytes", "quantization", "`load_in_4bit=True`")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=skip_modules,
    )


def is_model_object(model: Any) -> bool:
    """A loaded model (anything with ``forward`` and ``parameters``, `SharedBaseModel` included)."""
    return hasattr(model, "forward") and hasattr(model, "parameters")


@dataclass(frozen=True)
class ScorerModelArgs:
    """How a model-backed scorer loads a model given by id or folder: the one loading argument of every scorer
    (``model_init_kwargs=``, a `ScorerModelArgs` or a dict of its fields), in the spirit of TRL's
    ``model_init_kwargs``.

    Args:
        dtype: ``from_pretrained`` dtype (default float32).
        device: where the model runs (default: CUDA when available; a quantized model is placed by its device map).
        quantization_config: an explicit ``BitsAndBytesConfig``.
        load_in_4bit: NF4 (`nf4_config`; a classifier's head stays in full precision) unless ``quantization_config``.
        trust_remote_code: run the checkpoint's own modelling code.
        model_kwargs: more ``from_pretrained`` arguments (they win over the ones built here).
    """

    dtype: Any = None
    device: Any = None
    quantization_config: Any = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    model_kwargs: dict[str, Any] | None = None

    @classmethod
    def coerce(cls, value: Any, owner: str = "ScorerModelArgs") -> ScorerModelArgs:
        """``value`` as a `ScorerModelArgs`: None (the defaults), an instance, or a mapping of its fields (from a
        YAML recipe); an unknown key is refused naming ``owner`` and the known ones."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{owner}: model_init_kwargs must be a ScorerModelArgs or a dict, got {type(value).__name__}."
            )
        known = [field.name for field in fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(
                f"{owner}: unknown model_init_kwargs {unknown}; known: {known} (more from_pretrained arguments go in "
                "model_kwargs)."
            )
        return cls(**value)

    @classmethod
    def from_model_config(cls, model_args: Any, **overrides: Any) -> ScorerModelArgs:
        """From a `trl.ModelConfig`: its dtype, revision, attention implementation and quantization."""
        kwargs = model_init_kwargs(model_args)
        kwargs.pop("device_map", None)
        return cls(
            dtype=kwargs.pop("dtype"),
            quantization_config=kwargs.pop("quantization_config", None),
            trust_remote_code=kwargs.pop("trust_remote_code"),
            model_kwargs={k: v for k, v in kwargs.items() if v is not None},
        ).replace(**overrides)

    def replace(self, **changes: Any) -> ScorerModelArgs:
        """A copy with ``changes`` (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)


def load_scorer_model(
    model_name_or_path: Any,
    model_init_kwargs: ScorerModelArgs | Mapping[str, Any] | None = None,
    *,
    task: str = "causal-lm",
    num_labels: int | None = None,
    merge_adapter: bool = False,
    owner: str = "load_scorer_model",
) -> Any:
    """Load a frozen judge / PRM / classifier: the one loader of every model-backed scorer.

    Args:
        model_name_or_path: checkpoint id or folder (a full model, or a PEFT adapter folder with
            ``adapter_config.json``: its base model plus the adapter), or an already loaded model, returned as is
            (moved to ``device`` when given; it may be trained elsewhere, so it is not frozen).
        model_init_kwargs: how to load it (`ScorerModelArgs` or a dict of its fields; default: float32, CUDA when
            available).
        task: 'causal-lm', 'sequence-classification', 'token-classification' or 'feature-extraction' (a
            bare encoder, ``AutoModel``: sentence embeddings).
        num_labels: for the classification tasks (None keeps the checkpoint's).
        merge_adapter: merge an adapter folder's weights into its base (not with 4-bit); else the adapter stays
            (`adapters_disabled` then gives the base model, e.g. an implicit PRM's reference).
        owner: the scorer's name, used in error messages.

    Returns:
        A model in eval mode with ``requires_grad=False`` everywhere, or the given model object (e.g. a
        `SharedBaseModel`, which `trl-token grpo` builds for a scorer on the policy's checkpoint).
    """
    args = ScorerModelArgs.coerce(model_init_kwargs, owner)
    if task not in SCORER_TASKS:
        raise ValueError(f"{owner}: task={task!r} is not supported; choose one of {list(SCORER_TASKS)}.")
    device, quantization = args.device, args.quantization_config
    if is_model_object(model_name_or_path):
        model = model_name_or_path
        quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
        return model if device is None or quantized else model.to(device)  # a k-bit model stays where it was put
    if not isinstance(model_name_or_path, str) and not hasattr(model_name_or_path, "__fspath__"):
        raise TypeError(
            f"{owner}: model must be a model id, a path or a model object, got {type(model_name_or_path).__name__}."
        )
    source = str(model_name_or_path)
    kwargs: dict[str, Any] = {"trust_remote_code": args.trust_remote_code, "dtype": args.dtype or "float32"}
    if num_labels is not None and task != "causal-lm":
        kwargs["num_labels"] = num_labels
    if args.load_in_4bit and quantization is None:
        # Classifiers (small encoders) keep their head in full precision and skip nested quantization of the scales.
        classifier = task != "causal-lm"
        quantization = nf4_config(["classifier", "score", "pooler.dense"] if classifier else None, not classifier)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": str(device or default_device())}
    kwargs.update(args.model_kwargs or {})
    model = _from_pretrained(source, task, kwargs, merge_adapter and "quantization_config" not in kwargs)
    if "device_map" not in kwargs and "quantization_config" not in kwargs:
        model = model.to(device or default_device())
    keep_bnb_4bit_inference_working_on_cpu(model)
    model.eval()
    model.requires_grad_(False)
    return model


def _from_pretrained(source: str, task: str, kwargs: dict[str, Any], merge: bool) -> Any:
    """``<Auto class for task>.from_pretrained``; a PEFT adapter folder loads its base model then the adapter."""
    import json
    import os

    import transformers

    auto = {
        "causal-lm": transformers.AutoModelForCausalLM,
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "token-classification": transformers.AutoModelForTokenClassification,
        "feature-extraction": transformers.AutoModel,
    }[task]
    adapter_config = os.path.join(source, "adapter_config.json")
    if not os.path.isfile(adapter_config):
        return auto.from_pretrained(source, **kwargs)
    from peft import PeftModel

    with open(adapter_config, encoding="utf-8") as handle:
        base_id = json.load(handle)["base_model_name_or_path"]
    # A classifier adapter saves the config of its head (labels) beside it; the base's config lacks it.
    config_source = source if os.path.isfile(os.path.join(source, "config.json")) else base_id
    config = transformers.AutoConfig.from_pretrained(config_source)
    model = PeftModel.from_pretrained(auto.from_pretrained(base_id, config=config, **kwargs), source)
    return model.merge_and_unload() if merge else model
