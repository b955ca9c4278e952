"""The layers as the code imports them: every import of every module, those inside functions included (ast).

    vggcore  <- bench
    vggcore  <- ablations <- reports
    vggbench: the drivers that use everything (the demo, the GPU check), imported by none of them

A test here fails on an import against that direction, on a cycle between modules, or on a private (`_name`)
name taken from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("vggcore", "bench", "ablations", "reports", "vggbench")
ALLOWED = {  # folder -> the other folders it may import
    "vggcore": set(),
    "bench": {"vggcore"},
    "ablations": {"vggcore"},
    "reports": {"vggcore", "ablations"},
    "vggbench": {"vggcore", "bench", "ablations", "reports"},
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for folder in FOLDERS for p in sorted((root / folder).rglob("*.py"))}


def imports(name: str, path: Path) -> list[tuple[str, str | None, int, bool]]:
    """(imported module, imported name or None, line, typing only) for every import statement in the file, at any
    depth; `typing only`: under `if TYPE_CHECKING:`, which never runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, node.lineno, typing_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.extend((target, alias.name, node.lineno, typing_only) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only or (isinstance(node, ast.If) and child in node.body
                                         and "TYPE_CHECKING" in ast.unparse(node.test)))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def project_edges(mods: dict[str, Path]) -> list[tuple[str, str, str | None, int, bool]]:
    """(importer, imported project module, imported name, line, typing only); `from pkg import mod` counts as
    pkg.mod."""
    edges = []
    for name, path in mods.items():
        for target, item, line, typing_only in imports(name, path):
            if target.split(".")[0] not in FOLDERS:
                continue
            if item is not None and f"{target}.{item}" in mods:
                target, item = f"{target}.{item}", None
            edges.append((name, target, item, line, typing_only))
    return edges


def forbidden(edges) -> list[str]:
    out = []
    for importer, target, _, line, _ in edges:
        a, b = importer.split(".")[0], target.split(".")[0]
        if a != b and b not in ALLOWED[a]:
            may = f"only {', '.join(sorted(ALLOWED[a]))}" if ALLOWED[a] else "none of the other folders"
            out.append(f"{importer} (line {line}) imports {target}: {a} may import {may}")
    return out


def cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a cycle of imports that run (an
    import for type checkers alone never runs, so it closes no cycle)."""
    graph: dict[str, set[str]] = {}
    for importer, target, _, _, typing_only in edges:
        if typing_only:
            continue
        if importer != target and not importer.startswith(target + "."):  # a module's own package __init__
            graph.setdefault(importer, set()).add(target)
            graph.setdefault(target, set())
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def private_imports(edges) -> list[str]:
    return [f"{importer} (line {line}) imports {item} from {target}" for importer, target, item, line, _ in edges
            if item is not None and item.startswith("_") and not item.startswith("__") and importer != target]


def test_the_layers_import_one_way():
    assert forbidden(project_edges(modules())) == []


def test_no_module_imports_itself_in_a_circle():
    assert cycles(project_edges(modules())) == []


def test_no_private_name_crosses_a_module():
    assert private_imports(project_edges(modules())) == []


def test_every_folder_is_seen():
    """The checks above are not vacuous: each folder has modules, and each allowed direction is used."""
    mods = modules()
    assert {m.split(".")[0] for m in mods} == set(FOLDERS)
    used = {(i.split(".")[0], t.split(".")[0]) for i, t, *_ in project_edges(mods)}
    assert {("bench", "vggcore"), ("ablations", "vggcore"), ("reports", "ablations"), ("reports", "vggcore"),
            ("vggbench", "reports"), ("vggbench", "ablations")} <= used


@pytest.fixture
def planted(tmp_path):
    """A copy of the layout with one module of each folder, to plant violations in."""
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    return tmp_path


def plant(root: Path, files: dict[str, str]):
    for rel, text in files.items():
        (root / rel).write_text(text)
    return project_edges(modules(root))


def test_a_function_level_import_against_the_layers_is_caught(planted):
    edges = plant(planted, {"ablations/adaptive.py": "def f():\n    from reports.stats import effects\n"})
    assert forbidden(edges) == ["ablations.adaptive (line 2) imports reports.stats: ablations may import only "
                                "vggcore"]


def test_a_cycle_through_relative_imports_is_caught(planted):
    edges = plant(planted, {"reports/a.py": "from . import b\n", "reports/b.py": "def f():\n    from .a import g\n"})
    assert cycles(edges) == [["reports.a", "reports.b"]]


def test_a_private_name_from_another_module_is_caught(planted):
    edges = plant(planted, {"reports/compare.py": "def _within_var(): pass\n",
                            "reports/history.py": "from .compare import _within_var, judge\n"})
    assert private_imports(edges) == ["reports.history (line 1) imports _within_var from reports.compare"]
    assert forbidden(edges) == [] and cycles(edges) == []


def test_an_import_for_type_checkers_closes_no_cycle_but_keeps_the_direction(planted):
    edges = plant(planted, {"vggcore/step.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                               "    from .train import TrainConfig\n    from reports import x\n",
                            "vggcore/train.py": "from .step import sgd\n"})
    assert cycles(edges) == []
    assert forbidden(edges) == ["vggcore.step (line 4) imports reports: vggcore may import none of the other "
                                "folders"]


# ------------------------------------------------------------------------------------------- vggcore's rooms
ROOMS = {  # room -> the other rooms its modules may import (top-level infrastructure modules: any room may)
    "model": set(),
    "data": {"model"},
    "evaluate": {"model", "data", "train"},     # scoring a run folder reads its checkpoint (train.checkpoint)
    "train": {"model", "data", "evaluate"},     # every epoch scores the validation split
    "profile": {"model", "data", "train", "evaluate"},
    "cli": {"model", "data", "train", "evaluate", "profile"},
}
INFRA = {"config", "errors", "validation", "provenance", "lock", "device", "memory", "threads", "files", "intervals",
         "seeds", "world", "peaks", "results", "__main__"}
HEAVY_INFRA = {"memory", "peaks", "__main__"}   # infrastructure that measures with torch
# The room modules the infrastructure may import: tables and plain data, no torch, so `vggcore.config` (and every
# light command reading a study or a record through it) imports no torch.
LIGHT = {"vggcore.model.archs", "vggcore.data.presets", "vggcore.evaluate.protocols", "vggcore.train.schedules",
         "vggcore.world", "vggcore.train.sgd"}
MAX_LINES = 450


def core_modules() -> dict[str, Path]:
    return {name: path for name, path in modules().items() if name.split(".")[0] == "vggcore"}


def test_every_core_module_lives_in_a_room_or_is_infrastructure():
    strays = []
    for name in core_modules():
        parts = name.split(".")
        if len(parts) == 1 or parts[1] in ("__main__",):
            continue
        if len(parts) == 2 and parts[1] not in INFRA and parts[1] not in ROOMS:
            strays.append(name)
    assert strays == []
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((ROOT / "vggcore" / room / "__init__.py").read_text()))
        assert doc, f"vggcore/{room}/__init__.py says what lives there and what it may import"


def room_of(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else None


def test_the_rooms_import_in_their_directions():
    wrong = []
    for importer, target, _, line, _ in project_edges(core_modules()):
        if target.split(".")[0] != "vggcore":
            continue
        a, b = room_of(importer), room_of(target)
        if a is None and b is not None and importer.count(".") == 1 and target not in LIGHT \
                and importer != "vggcore.__main__":
            wrong.append(f"{importer} (line {line}) imports {target}: the infrastructure imports only "
                         f"{', '.join(sorted(LIGHT))} of the rooms")
        elif a is not None and b is not None and a != b and b not in ROOMS[a]:
            wrong.append(f"{importer} (line {line}) imports {target}: {a} may import {sorted(ROOMS[a]) or 'no room'}")
    assert wrong == []


def test_the_light_modules_import_no_torch():
    heavy = [f"{name} (line {line}) imports {target}" for name in sorted(LIGHT | {f"vggcore.{m}" for m in INFRA - HEAVY_INFRA})
             for target, _, line, _ in _module_level_imports(name) if target.split(".")[0] in ("torch", "torchvision")]
    assert heavy == []


def _module_level_imports(name: str) -> list[tuple[str, str | None, int, bool]]:
    path = core_modules()[name]
    tree = ast.parse(path.read_text())
    out = []
    for node in tree.body:   # function bodies import lazily, which is the point
        if isinstance(node, ast.Import):
            out.extend((a.name, None, node.lineno, False) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.extend((node.module, a.name, node.lineno, False) for a in node.names)
    return out


def test_no_core_module_is_over_the_line_limit():
    long = {name: len(path.read_text().splitlines()) for name, path in core_modules().items()}
    assert {name: n for name, n in long.items() if n > MAX_LINES} == {}
