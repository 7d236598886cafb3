"""The layout's rules, read from the code itself (ast, nothing imported): imports between the backend's
folders run one way (docs/ARCHITECTURE.md), there is no import cycle, serving never imports training,
the add-on imports nothing of the backend, and no function is longer than a reader can hold."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# backend's folders and top-level modules, bottom to top: an import may only reach a lower tier.
TIERS: tuple[frozenset[str], ...] = tuple(frozenset(t.split()) for t in (
    "backend terrain durable grids",  # foundation: the package root, the Heightfield, durable writes, grid numerics
    "diffusion networks meshing simulation voxels",  # maths and physics, no learned state
    "memory export",  # the memory network (a model part), engine exports
    "data",  # corpus, datasets, profiles, walks
    "models",  # the model hub: loads and holds the shipped models
    "world metrics",  # infinite worlds of tiles; realism metrics and the style classifier
    "generators",  # the generators a request picks
    "editing training",  # brushes and curves; training (which serving never imports)
    "server headless render",  # the entry points' machinery
    "cli",
    "__main__",
))
TIER = {name: i for i, tier in enumerate(TIERS) for name in tier}
ADDON_MAY_IMPORT = {"protocol", "bpy", "bpy_extras", "bmesh", "mathutils", "gpu", "gpu_extras",  # Blender's own
                    "numpy",  # bundled with Blender
                    "zmq", "msgpack"}  # the wire, under protocol
MAX_FUNCTION_LINES = 80


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module in the package folder (links, like the add-on's protocol, skipped)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if not any(p.is_symlink() for p in [path, *path.parents]):
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path) -> set[str]:
    """Absolute names of everything `path` imports anywhere (module level, functions, TYPE_CHECKING blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def backend_graph() -> dict[str, set[str]]:
    """Module -> the backend modules it imports (an imported name resolves to the module that defines it)."""
    known = modules(ROOT / "backend")

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    return {m: {r for n in imported(m, p) if (r := resolve(n)) and r != m} for m, p in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def folder(module: str) -> str:
    """The backend folder (or top-level module) a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_backend_has_no_import_cycle() -> None:
    graph = backend_graph()
    assert cycles(graph) == []
    folders = {folder(m): set() for m in graph}
    for m, targets in graph.items():
        folders[folder(m)].update(folder(t) for t in targets if folder(t) != folder(m))
    assert cycles(folders) == []


def test_imports_between_backend_folders_run_down_the_tiers() -> None:
    graph = backend_graph()
    assert sorted(set(map(folder, graph)) - set(TIER)) == [], "a new folder: give it a tier here and in ARCHITECTURE.md"
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                    if folder(t) != folder(m) and TIER[folder(t)] >= TIER[folder(m)])
    assert upward == []


def test_serving_never_imports_training() -> None:
    offending = sorted(f"{m} -> {t}" for m, targets in backend_graph().items() for t in targets
                       if folder(t) == "training" and folder(m) != "training")
    assert offending == []


def addon_violations(addon: Path) -> list[str]:
    """Imports of the add-on beyond its own modules (and its ``protocol`` link), Blender and the standard library."""
    offending = []
    for name, path in modules(addon).items():
        for target in sorted(imported(name, path)):
            top = target.split(".")[0]
            if top != addon.name and top not in sys.stdlib_module_names and top not in ADDON_MAY_IMPORT:
                offending.append(f"{name} -> {target}")
    return offending


def test_addon_imports_only_protocol_blender_and_the_standard_library() -> None:
    assert addon_violations(ROOT / "blender_addon") == []


def long_functions(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


@pytest.mark.parametrize("folder_name", ["backend", "blender_addon"])
def test_no_function_is_longer_than_80_lines(folder_name: str) -> None:
    assert long_functions(ROOT / folder_name) == []


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    """The checks above are not vacuous: a cycle, an add-on importing the backend and a long function are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    addon = tmp_path / "addon"
    addon.mkdir()
    (addon / "ops.py").write_text("import bpy\nfrom . import mesh\nfrom .protocol import Message\n"
                                  "from backend.generators import registry\n")
    assert addon_violations(addon) == ["addon.ops -> backend.generators", "addon.ops -> backend.generators.registry"]
    (addon / "long.py").write_text("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert long_functions(addon) == [f"addon/long.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
