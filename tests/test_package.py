"""The public namespace: static sorted `__all__`, lazy imports that resolve."""

import importlib

import trl_token_ext


def test_all_is_sorted_and_matches_lazy_table():
    assert trl_token_ext.__all__ == sorted(trl_token_ext.__all__)
    assert set(trl_token_ext.__all__) == set(trl_token_ext._LAZY)


def test_every_public_name_resolves():
    for name in trl_token_ext.__all__:
        value = getattr(trl_token_ext, name)
        assert getattr(importlib.import_module(trl_token_ext._LAZY[name]), name) is value


def test_unknown_attribute_raises():
    try:
        trl_token_ext.NotAThing  # noqa: B018
    except AttributeError as error:
        assert "NotAThing" in str(error)
    else:
        raise AssertionError("expected AttributeError")
