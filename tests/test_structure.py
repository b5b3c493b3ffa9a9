"""The package layers depend one way, and a scene family is one file.

    utilities (_names, _cache, _xla, streams) <- physsim <- sim, questions (the vocabulary) <- render <- scenarios
        <- episode <- model <- env, selfcheck <- train, data <- the command-line tools

A module may import its own package and the layers below it, never one above (lazy imports inside functions
count too). Checked by planting a back edge: with `from physsim import episode` added to
`physsim/scenarios/base.py`, `test_imports_only_point_down_the_layers` failed naming
"physsim.scenarios.base imports physsim.episode (layer scenarios < episode)"; so did a lazy
`from physsim.train import config` inside `physsim/questions/templates.py`.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "physsim"
LAYERS = (
    ("_names", "_cache", "_xla", "streams"),
    ("physsim",),  # the package's own __init__
    ("sim", "questions"),
    ("render",),
    ("scenarios",),
    ("episode",),
    ("model",),
    ("env", "selfcheck"),
    ("train", "data"),
    ("audit", "bench", "export", "predict", "reference", "score", "validate"),
    ("settings",),  # the physics settings search: runs the validation, the audit and the bench per candidate
)
LAYER = {package: i for i, packages in enumerate(LAYERS) for package in packages}


def package_of(module: str) -> str:
    """'physsim.scenarios.base' -> 'scenarios'; 'physsim' -> 'physsim'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "physsim"


def module_name(path: Path) -> str:
    parts = ("physsim",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every physsim module `path` imports, at the top or inside a function (`from physsim import x` counts as
    importing physsim.x: x may be a package)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "physsim"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "physsim":
            out += [f"{node.module}.{a.name}" if node.module == "physsim" else node.module for a in node.names]
    return out


def back_edges(root: Path = SRC) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path)
        for imported in imports(path):
            a, b = package_of(importer), package_of(imported)
            if a == b:
                continue
            if a not in LAYER or b not in LAYER:
                found.append(f"{importer} imports {imported}: add {a if a not in LAYER else b!r} to LAYERS")
            elif LAYER[b] >= LAYER[a]:
                found.append(f"{importer} imports {imported} (layer {a} < {b})")
    return found


def test_imports_only_point_down_the_layers():
    assert back_edges() == []


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
                if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").exists()}
    assert packages <= set(LAYER), sorted(packages - set(LAYER))


@pytest.mark.parametrize("path", ["questions/templates.py", "questions/tokenizer.py", "questions/answers.py"])
def test_the_question_vocabulary_imports_only_utilities(path):
    imported = {package_of(m) for m in imports(SRC / path)} - {"questions"}
    assert imported <= set(LAYERS[0]), imported
