"""The TRL internals the token trainers use, as the façade lists them (`trl_token_ext.trainers._trl.TRL_API`), checked
against the installed TRL for `GRPOTrainer`, `RLOOTrainer` and transformers' `Trainer`; and the façade is the only
module that uses one (the token trainer classes may only define overrides of them).

`make test-compat` runs this on the oldest and newest supported TRL: a TRL release that renames or re-signs one of
them fails here by name, before any training test does (docs/trl_internals.md lists what each is for).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
import transformers
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from trl_token_ext.trainers import _trl

CLASSES = {"GRPOTrainer": GRPOTrainer, "RLOOTrainer": RLOOTrainer, "Trainer": transformers.Trainer}
PACKAGE = Path(_trl.__file__).resolve().parents[1]
FACADE = Path(_trl.__file__).resolve()
TRAINER_CLASS_MODULES = {PACKAGE / "trainers" / "grpo.py", PACKAGE / "trainers" / "rloo.py"}
METHODS = [(api, owner) for api in _trl.TRL_API if api.params is not None for owner in api.owners]
ATTRIBUTES = [(api, owner) for api in _trl.TRL_API if api.params is None for owner in api.owners]


def case_id(case):
    api, owner = case
    return f"{owner.rsplit('.', 1)[-1]}.{api.name}"


def lookup(owner: str, name: str):
    source = CLASSES[owner] if owner in CLASSES else importlib.import_module(owner)
    return getattr(source, name, None)


@pytest.fixture(scope="module")
def stock_trainers(tiny_model_dir, tmp_path_factory):
    """Stock GRPO and RLOO trainers on the tiny model: their instance attributes are those TRL sets in __init__."""
    dataset = Dataset.from_dict({"prompt": ["The movie was", "A cat sat"] * 2})
    out = tmp_path_factory.mktemp("stock")
    trainers = {}
    for name, trainer_class, config_class in (("GRPOTrainer", GRPOTrainer, GRPOConfig),
                                              ("RLOOTrainer", RLOOTrainer, RLOOConfig)):  # fmt: skip
        args = config_class(output_dir=str(out / name), use_cpu=True, report_to="none", per_device_train_batch_size=4,
                            num_generations=2, max_steps=1)  # fmt: skip
        trainers[name] = trainer_class(
            model=tiny_model_dir, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
            train_dataset=dataset,
        )  # fmt: skip
    return trainers


@pytest.fixture(scope="module")
def trl_private_names(stock_trainers):
    """Every private (``_x``, not dunder) attribute of a stock GRPO or RLOO trainer instance or class."""
    return {name for trainer in stock_trainers.values() for name in dir(trainer)
            if name.startswith("_") and not name.startswith("__")}  # fmt: skip


@pytest.mark.parametrize("case", METHODS, ids=case_id)
def test_method_has_the_signature_the_trainers_use(case):
    api, owner = case
    method = lookup(owner, api.name)
    assert method is not None, f"{owner}.{api.name} is gone"
    params = list(inspect.signature(method).parameters)
    assert params[: len(api.params)] == list(api.params), f"{owner}.{api.name}{params}"


@pytest.mark.parametrize("case", ATTRIBUTES, ids=case_id)
def test_attribute_exists_on_a_stock_trainer(case, stock_trainers):
    api, owner = case
    assert hasattr(stock_trainers[owner], api.name), f"{owner} instances have no {api.name}"


def test_forward_keys_are_the_multimodal_parameters_of_both_trainers():
    for trainer_class in (GRPOTrainer, RLOOTrainer):
        params = list(inspect.signature(trainer_class._get_per_token_logps_and_entropies).parameters)
        assert params[: len(_trl._LOGPS_PARAMS)] == list(_trl._LOGPS_PARAMS)
        assert tuple(params[len(_trl._LOGPS_PARAMS) :]) == _trl.FORWARD_KEYS
    assert "pixel_values" in _trl.FORWARD_KEYS and "token_type_ids" in _trl.FORWARD_KEYS


def package_modules():
    return sorted(path for path in PACKAGE.rglob("*.py") if "demo" not in path.relative_to(PACKAGE).parts)


def trl_uses(path: Path, private: set[str]) -> list[tuple[int, str, str]]:
    """(line, kind, name) of every TRL internal ``path`` touches: private attributes (in ``trainers/`` on any object,
    elsewhere on an object whose expression names a trainer), defined methods / class attributes with a TRL private
    name, and names imported from TRL submodules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_trainers = path.parent.name == "trainers"
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            if in_trainers or "trainer" in ast.unparse(node.value).lower():
                uses.append((node.lineno, "attribute", ast.unparse(node)))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name in private:
                    uses.append((item.lineno, "def", item.name))
                targets = item.targets if isinstance(item, ast.Assign) else []
                for target in targets:
                    if isinstance(target, ast.Name) and target.id in private:
                        uses.append((item.lineno, "class attribute", target.id))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trl."):
            uses.extend((node.lineno, "import", f"{node.module}.{alias.name}") for alias in node.names)
    return uses


def allowed_override(path: Path, tree: ast.AST, line: int, kind: str, text: str) -> bool:
    """A trainer class's own definition of a TRL private name, or ``super().name`` inside its ``def name``."""
    if path not in TRAINER_CLASS_MODULES:
        return False
    if kind in ("def", "class attribute"):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.lineno <= line <= node.end_lineno:
            if text == f"super().{node.name}":
                return True
    return False


def test_only_the_facade_names_trl_internals(trl_private_names):
    offenders = []
    for path in package_modules():
        if path == FACADE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, kind, text in trl_uses(path, trl_private_names):
            if not allowed_override(path, tree, line, kind, text):
                offenders.append(f"{path.relative_to(PACKAGE)}:{line}: {kind} {text}")
    assert not offenders, "TRL internals outside trainers/_trl.py:\n" + "\n".join(offenders)


def test_the_facade_lists_every_internal_it_uses(trl_private_names):
    listed = {api.name for api in _trl.TRL_API}
    used = {text.rsplit(".", 1)[-1] for _, _, text in trl_uses(FACADE, trl_private_names)}
    assert used, "the scan found nothing: it no longer recognises the façade's uses"
    assert used <= listed, f"used by the façade but not in TRL_API: {sorted(used - listed)}"


def test_every_listed_internal_is_used(trl_private_names):
    others = [path for path in (PACKAGE / "trainers").glob("*.py") if path != FACADE]
    text = "\n".join(path.read_text(encoding="utf-8") for path in others)
    facade = FACADE.read_text(encoding="utf-8").split("TRL_API: tuple", 1)[0]  # the code above the table
    facade += FACADE.read_text(encoding="utf-8").split("FORWARD_KEYS: tuple", 1)[1]  # and below it
    unused = [api.name for api in _trl.TRL_API if api.name not in text + facade]
    assert not unused, f"listed in TRL_API but used nowhere: {unused}"


def test_docs_list_every_internal():
    text = (PACKAGE.parent / "docs" / "trl_internals.md").read_text(encoding="utf-8")
    missing = [api.name for api in _trl.TRL_API if not re.search(rf"[`.]{api.name}\b", text)]
    assert not missing, f"docs/trl_internals.md does not list {missing}"
