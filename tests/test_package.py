"""The public namespace: one table (`_EXPORTS`) from which the sorted `__all__` and the lazy lookup derive."""

import importlib

import trl_token_ext


def test_exports_table_is_sorted_and_all_is_derived_from_it():
    exports = trl_token_ext._EXPORTS
    assert list(exports) == sorted(exports)
    for module, names in exports.items():
        assert list(names) == sorted(names), module
    flat = [name for names in exports.values() for name in names]
    assert len(flat) == len(set(flat))  # a name lives in one module
    assert trl_token_ext.__all__ == sorted(flat)
    assert all(isinstance(name, str) for name in trl_token_ext.__all__)


def test_every_public_name_resolves_to_its_module():
    for module, names in trl_token_ext._EXPORTS.items():
        for name in names:
            assert getattr(trl_token_ext, name) is getattr(importlib.import_module(module), name)


def test_unknown_attribute_raises():
    try:
        trl_token_ext.NotAThing  # noqa: B018
    except AttributeError as error:
        assert "NotAThing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_lazy_exports_import_on_first_access_cache_and_list_the_names():
    namespace = {"__name__": "pkg", "__all__": ["eager"], "eager": 1}
    trl_token_ext._lazy_exports(namespace, {"json": ("dumps", "loads"), "textwrap": ("dedent",)})
    assert namespace["__all__"] == ["dedent", "dumps", "eager", "loads"]
    assert "dumps" not in namespace  # nothing imported yet
    import json

    assert namespace["__getattr__"]("dumps") is json.dumps
    assert namespace["dumps"] is json.dumps  # cached: the next lookup does not reach __getattr__
    assert namespace["__dir__"]() == sorted({*namespace, "dedent", "loads"})
    try:
        namespace["__getattr__"]("nope")
    except AttributeError as error:
        assert str(error) == "module 'pkg' has no attribute 'nope'"
    else:
        raise AssertionError("expected AttributeError")
