"""The package layout stays readable: no import cycles (function-local imports count too),
the engine never imports Qt or the app, every folder is a package, long modules say why,
and every `-m` module named in the code exists."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"models": "stemwright.models", "desktop": "stemwright.desktop"}
MAX_LINES = 800


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path) -> set[str]:
    """Every stemwright module `name` imports, at any depth (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            found.add(src)
            found.update(f"{src}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
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
            strong(v)
    return out


def _package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between modules, ignoring a package's own `__init__` re-exports."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_no_import_cycles():
    assert _cycles(_package_edges(GRAPH)) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_engine_never_imports_qt_or_the_app():
    """The one exception: `stemwright gui` starts the app (and only that command)."""
    for name, path in MODULES.items():
        if not name.startswith("stemwright.models"):
            continue
        found = re.findall(r"^\s*(?:from|import)\s+((?:PySide6|pyqtgraph|stemwright\.desktop)"
                           r"[\w.]*)", path.read_text(), re.M)
        allowed = ["stemwright.desktop.app"] if name == "stemwright.models.cli.commands" else []
        assert found == allowed, name


def test_every_source_folder_is_a_package():
    for folder in PACKAGES:
        for sub in (ROOT / folder).rglob("*"):
            if sub.is_dir() and "__pycache__" not in sub.parts and any(sub.glob("*.py")):
                assert (sub / "__init__.py").is_file(), sub


#: Modules still waiting for their split (issue 14); remove a name when its module is split.
PENDING_SPLIT: set[str] = set()


def test_long_modules_say_why():
    """Over about 800 lines a module needs a reason in its docstring ('Long because ...')."""
    too_long = set()
    for name, path in MODULES.items():
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and "long because" not in doc.lower():
            too_long.add(name)
    assert too_long - PENDING_SPLIT == set(), "split these modules or say why they are long"
    assert PENDING_SPLIT - too_long == set(), "split already: remove from PENDING_SPLIT"


def test_modules_run_as_child_processes_exist():
    """`python -m NAME` strings in the code name modules that exist."""
    found = set()
    for path in [*MODULES.values(), *(ROOT / "tests").glob("*.py")]:
        for target in re.findall(r'"-m",\s*"(stemwright\.[\w.]+)"', path.read_text()):
            assert importlib.util.find_spec(target) is not None, f"{path.name}: {target}"
            found.add(target)
    from stemwright.desktop.engine import child

    for command in (child.SEPARATION_CHILD, child.EVALUATION_CHILD,
                    child.ANALYSIS_CHILD):  # the scan sees them
        assert command[0] == "-m" and command[1] in found, command


@pytest.mark.parametrize("name", ["load_separator", "list_models", "Separator",
                                  "SeparationResult", "STEMS", "load_audio", "save_audio"])
def test_public_facade(name):
    import stemwright.models as api

    assert name in api.__all__
    assert getattr(api, name) is not None


# Imports that may wait inside a function: packages that cost start-up time (`stemwright
# --help` and the app's first window must not pay for torch, Qt or librosa) or are optional.
DEFERRABLE = {
    "torch", "torchaudio", "librosa", "demucs", "openunmix", "asteroid_filterbanks", "av",
    "sounddevice", "PySide6", "pyqtgraph", "scipy", "numba", "pedalboard", "pyloudnorm",
    "museval", "soxr", "soundfile", "safetensors", "yaml", "mido", "tqdm", "pyroomacoustics",
    "einops", "beartype", "rotary_embedding_torch", "bs_roformer", "audio_separator",
    "onnxruntime", "resource",
}
LAZY_COMMENT = "# lazy:"


def _module_level_imports(name: str, path: Path) -> set[str]:
    """Everything `name` imports when it loads (stemwright modules and top-level packages)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    nodes = [n for n in tree.body if not _is_type_checking(n)]
    for node in list(nodes):
        if isinstance(node, ast.If | ast.Try):
            nodes.extend(c for c in ast.walk(node) if isinstance(c, ast.Import | ast.ImportFrom))
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found.update(_from_targets(package, node))
    return found


def _from_targets(package: str, node: ast.ImportFrom) -> set[str]:
    if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        src = ".".join(base + ([node.module] if node.module else []))
    else:
        src = node.module or ""
    return {src} | {f"{src}.{a.name}" for a in node.names if f"{src}.{a.name}" in MODULES}


def _heavy_modules() -> set[str]:
    """Stemwright modules whose loading imports a deferrable package (at any depth)."""
    loads = {name: _module_level_imports(name, path) for name, path in MODULES.items()}
    heavy: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, targets in loads.items():
            if name not in heavy and any(t.split(".")[0] in DEFERRABLE or t in heavy
                                         for t in targets):
                heavy.add(name)
                changed = True
    return heavy


def _needless_local_imports() -> list[str]:
    heavy = _heavy_modules()
    bad = []
    for name, path in MODULES.items():
        text = path.read_text()
        lines = text.splitlines()
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for fn in ast.walk(ast.parse(text)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    targets = {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    targets = _from_targets(package, node)
                else:
                    continue
                if any(t.split(".")[0] in DEFERRABLE or t in heavy for t in targets):
                    continue
                if LAZY_COMMENT in lines[node.lineno - 1]:
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                bad.append(f"{where}: {lines[node.lineno - 1].strip()}")
    return sorted(set(bad))


def test_function_local_imports_only_defer_heavy_modules():
    """An import inside a function is there to keep start-up fast or a dependency optional:
    it loads torch, Qt, librosa... (directly or through the module it names), or says why
    with a `# lazy: <reason>` comment. Anything else belongs at the top of the module."""
    assert _needless_local_imports() == []
