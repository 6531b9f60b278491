"""The installed package is the library: importing it loads no demo or test-fixture module, and its public names
are library names only (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys

import trl_token_ext

DEMO_ONLY = {"smollm2_path", "sentiment_classifier_path", "train_classifier_main", "save_tiny_causal_lm"}


def _modules_after(statement: str) -> list[str]:
    listing = "print(json.dumps(sorted(m for m in sys.modules if m.startswith('trl_token_ext'))))"
    code = f"import json, sys\n{statement}\n{listing}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_loads_no_demo_or_testing_module():
    loaded = _modules_after("import trl_token_ext")
    assert loaded == ["trl_token_ext"]
    loaded = _modules_after("import trl_token_ext.cli, trl_token_ext.sentence, trl_token_ext.sentence.recipes")
    assert not [m for m in loaded if m.startswith(("trl_token_ext.demo", "trl_token_ext.testing"))], loaded


def test_public_names_are_library_names():
    assert not DEMO_ONLY & set(trl_token_ext.__all__)
    assert trl_token_ext.__all__ == sorted(trl_token_ext.__all__)
    for name in trl_token_ext.__all__:
        module = getattr(trl_token_ext, name).__module__
        assert module.startswith("trl_token_ext.") and not module.startswith(
            ("trl_token_ext.demo", "trl_token_ext.testing")
        ), (name, module)
    for module in (
        "trl_token_ext.demo",
        "trl_token_ext.testing",
        "trl_token_ext.pretrained",
        "trl_token_ext.demo_task",
    ):
        assert module.rsplit(".", 1)[1] not in trl_token_ext.__all__


def test_train_classifier_arguments_require_model_and_data(tmp_path, capsys):
    import pytest

    from trl_token_ext.sentence.recipes import TrainClassifierArguments, train_classifier_main

    with pytest.raises(TypeError, match="model_name_or_path"):
        TrainClassifierArguments()  # no demo asset as a default
    with pytest.raises(SystemExit):  # argparse: "the following arguments are required"
        train_classifier_main(["--output_dir", str(tmp_path)])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model_name_or_path: some/encoder\noutput_dir: out\n")
    with pytest.raises(SystemExit):  # TrlParser: the recipe sets the model, not the data
        train_classifier_main(["--config", str(recipe)])
    assert "the following arguments are required: --dataset_name" in capsys.readouterr().err


def test_train_classifier_command_is_wired_through_the_cli(capsys):
    import pytest

    from trl_token_ext import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train-classifier", "--help"])
    assert exit_info.value.code == 0
    assert "--model_name_or_path" in capsys.readouterr().out


def _first_party_imports(path):
    """(imported module, at module top?) for every `trl_token_ext` import of the file at ``path``."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trl_token_ext"):
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names if alias.name.startswith("trl_token_ext")]
    return found


def _import_graph(package):
    """First-party module -> the first-party modules it imports (at module top or in a function; ``from pkg import
    mod`` names ``pkg.mod``), over every ``.py`` file under ``package``."""
    import ast

    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        files[".".join(("trl_token_ext", *parts))] = path
    graph = {}
    for module, path in files.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trl_token_ext"):
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    imported.add(name if name in files else node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name.startswith("trl_token_ext")}
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


def _floors(graph):
    """Floor of each room (1: imports no other room; else 1 + the highest floor it imports), a room being a module
    of the package's top level or a subpackage as a whole (as `farm-studio look` draws the house)."""

    def room_of(module):
        return ".".join(module.split(".")[:2])

    rooms = {}
    for module, imported in graph.items():
        rooms.setdefault(room_of(module), set()).update(room_of(name) for name in imported)
    floors = {}

    def floor(room, path=()):
        if room not in floors:
            assert room not in path, f"import cycle: {' -> '.join((*path, room))}"
            below = [floor(other, (*path, room)) for other in rooms[room] - {room}]
            floors[room] = 1 + max(below, default=0)
        return floors[room]

    for room in rooms:
        floor(room)
    return floors


def test_layers_read_top_down():
    """No library module imports the entry points (cli, demo), which stand above every library module (the demo
    builds its token rewards through `script_args`, the top of the library); scorers do not import sentence/; the
    ground modules (text, data, choices, extras) import only each other and alignment (docs/architecture.md)."""
    from pathlib import Path

    package = Path(trl_token_ext.__file__).parent
    ground = {"trl_token_ext.text", "trl_token_ext.data", "trl_token_ext.choices", "trl_token_ext.extras"}
    entry_points = ("trl_token_ext.cli", "trl_token_ext.demo")
    for path in sorted(package.rglob("*.py")):
        module = "trl_token_ext." + ".".join(path.relative_to(package).with_suffix("").parts)
        if module.startswith(entry_points):
            continue
        imports = [name for name, _ in _first_party_imports(path)]
        assert not [n for n in imports if n.startswith(entry_points)], module
        if module.startswith("trl_token_ext.scorers"):
            assert not [n for n in imports if n.startswith("trl_token_ext.sentence")], module
        if module in ground:
            assert set(imports) <= ground | {"trl_token_ext.alignment"}, (module, imports)
    # The floors of the import graph: cli and demo stand above every library room (script_args, registry, ...).
    floors = _floors(_import_graph(package))
    library = sorted(((floor, room) for room, floor in floors.items() if room not in entry_points), reverse=True)
    for entry in entry_points:
        assert floors[entry] > library[0][0], (entry, floors[entry], library[:3])


def test_cli_and_the_ground_layer_import_without_torch_or_trl():
    """`trl-token --help`, the registry and the ground modules stay instant: torch and TRL load when a command runs."""
    code = (
        "import sys\nimport trl_token_ext.cli, trl_token_ext.registry, trl_token_ext.script_args\n"
        "import trl_token_ext.alignment, trl_token_ext.choices, trl_token_ext.text, trl_token_ext.data\n"
        "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "[]"
