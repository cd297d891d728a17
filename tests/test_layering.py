"""The packages depend on each other one way only, and no module imports itself back.

Every `.py` file of `rtrl_ref/`, `verify/` and `envs/` is parsed with `ast`; every import counts,
including those inside functions and under `if TYPE_CHECKING:`. Imports are resolved to project
modules (a package is its `__init__.py`; importing `pkg.sub` also runs `pkg`, unless the importer
is inside `pkg`); third-party imports are ignored.

Layers (a module may import its own layer and the layers listed after the arrow):

    math    rtrl_ref and its modules outside r2ac/, bench/ and the entry modules  -> (nothing else)
    envs    envs                                                                  -> (nothing else)
    verify  verify                                                                -> math
    r2ac    rtrl_ref.r2ac (the R2AC application)                                  -> math, envs
    entry   rtrl_ref.{train,evaluate,plot,confirm,copy_task} (python -m ...)      -> r2ac, math, envs
    bench   rtrl_ref.bench (benchmarks)                                           -> math, r2ac, verify, envs

No module imports an entry module, and library code never imports `tests` or `scripts`.
Independently of the layers, the module graph must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rtrl_ref", "verify", "envs")
NON_LIBRARY = ("tests", "scripts")
ENTRY_MODULES = frozenset(f"rtrl_ref.{name}" for name in ("train", "evaluate", "plot", "confirm", "copy_task"))
ALLOWED = {
    "math": {"math"},
    "envs": {"envs"},
    "verify": {"verify", "math"},
    "r2ac": {"r2ac", "math", "envs"},
    "entry": {"r2ac", "math", "envs"},
    "bench": {"bench", "math", "r2ac", "verify", "envs"},
}


class Edge(NamedTuple):
    importer: str   # module name, e.g. "rtrl_ref.rtrl"
    file: str       # path relative to the repository root
    line: int
    imported: str   # resolved project module, e.g. "rtrl_ref.kernels"
    via: str = ""   # for a parent package run by the import: the submodule named

    def where(self) -> str:
        via = f" (as the package of {self.via})" if self.via else ""
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}{via}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """{module name: file} for every .py file of the packages (no __pycache__)."""
    files = (f for pkg in packages for f in sorted((root / pkg).rglob("*.py")) if "__pycache__" not in f.parts)
    return {module_name(f, root): f for f in files}


def _absolute(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute dotted name of a (possibly relative) `from ... import` target."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _resolve(name: str, modules) -> str | None:
    """The longest project module that `name` starts with, or None."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def parse_imports(source: str, importer: str, file: str, modules, is_package: bool = False):
    """Edges from one module's source to the project modules it imports, and unresolvable imports.

    `modules` is the set of project module names. Returns (edges, missing): `missing` holds Edges
    whose `imported` names a project package's submodule that does not exist.
    """
    tops = {m.split(".")[0] for m in modules} | set(NON_LIBRARY)
    edges, missing = [], []
    for node in ast.walk(ast.parse(source, filename=file)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(importer, is_package, node.level, node.module)
            # `from pkg import sub` imports the submodule pkg.sub when there is one, else pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in targets:
            top = name.split(".")[0]
            if top not in tops:
                continue                                              # third-party or stdlib
            if top in NON_LIBRARY:
                edges.append(Edge(importer, file, node.lineno, name))
                continue
            resolved = _resolve(name, modules)
            if resolved != name:
                missing.append(Edge(importer, file, node.lineno, name))
            elif resolved != importer:
                edges.append(Edge(importer, file, node.lineno, resolved))
                # importing pkg.sub first runs pkg/__init__.py, unless pkg is already being imported
                own = {".".join(importer.split(".")[:n]) for n in range(1, importer.count(".") + 2)}
                parts = resolved.split(".")
                for n in range(1, len(parts)):
                    parent = ".".join(parts[:n])
                    if parent not in own and parent in modules:
                        edges.append(Edge(importer, file, node.lineno, parent, via=resolved))
    return edges, missing


def import_graph(root: Path = ROOT, packages=PACKAGES):
    """(edges, missing) over every module of the packages."""
    modules = project_modules(root, packages)
    edges, missing = [], []
    for name, path in modules.items():
        e, m = parse_imports(path.read_text(encoding="utf-8"), name, str(path.relative_to(root)),
                             set(modules), is_package=path.name == "__init__.py")
        edges += e
        missing += m
    return edges, missing


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top in ("verify", "envs"):
        return top
    if top != "rtrl_ref":
        return None                                                   # tests, scripts: no layer
    if module in ENTRY_MODULES:
        return "entry"
    second = module.split(".")[1] if "." in module else ""
    return {"r2ac": "r2ac", "bench": "bench"}.get(second, "math")


def layer_violations(edges) -> list[str]:
    """One line per import that goes upward or sideways against ALLOWED."""
    out = []
    for e in edges:
        src, dst = layer_of(e.importer), layer_of(e.imported)
        if dst is None:
            out.append(f"{e.where()} (library code may not import {e.imported.split('.')[0]})")
        elif src is not None and dst not in ALLOWED[src]:
            out.append(f"{e.where()} (layer {src} may import only {', '.join(sorted(ALLOWED[src]))}; "
                       f"{e.imported} is layer {dst})")
    return out


def find_cycles(edges) -> list[str]:
    """One line per strongly connected component of more than one module, naming one cycle's edges."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        if e.importer != e.imported:
            graph.setdefault(e.importer, {}).setdefault(e.imported, e)
            graph.setdefault(e.imported, {})
    # Tarjan's strongly connected components (iterative)
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        u = stack.pop()
                        on_stack.discard(u)
                        comp.append(u)
                        if u == v:
                            break
                    comps.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = counter[0]
                counter[0] += 1
                stack.append(w)
                on_stack.add(w)
                work.append((w, iter(sorted(graph[w]))))
            elif w in on_stack:
                low[v] = min(low[v], index[w])
    out = []
    for comp in comps:
        if len(comp) < 2:
            continue
        members = set(comp)
        # one concrete cycle through comp[0]: breadth-first search back to it inside the component
        start, parent, frontier = comp[0], {}, [comp[0]]
        while frontier and start not in parent:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in members and w not in parent:
                        parent[w] = v
                        nxt.append(w)
            frontier = nxt
        path, v = [], start
        while True:
            path.append(graph[parent[v]][v])
            v = parent[v]
            if v == start:
                break
        out.append("cycle " + " -> ".join(comp) + ": " + "; ".join(e.where() for e in reversed(path)))
    return out


# ---------------------------------------------------------------------------------------------
# The repository


def test_every_import_resolves():
    _, missing = import_graph()
    assert not missing, "imports of project modules that do not exist:\n" + "\n".join(
        f"{e.file}:{e.line}: {e.importer} imports {e.imported}" for e in missing)


def test_no_upward_or_forbidden_import():
    edges, _ = import_graph()
    violations = layer_violations(edges)
    assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_no_import_cycle():
    edges, _ = import_graph()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_parser_sees_the_packages():
    modules = project_modules(ROOT)
    for name in ("rtrl_ref", "rtrl_ref.cell", "rtrl_ref.bptt", "rtrl_ref.r2ac", "rtrl_ref.bench",
                 "verify", "envs", "rtrl_ref.train"):
        assert name in modules, name
    edges, _ = import_graph()
    assert any(e.importer == "rtrl_ref.bptt" and e.imported == "rtrl_ref.cell" for e in edges)


# ---------------------------------------------------------------------------------------------
# Negative twins: the checkers catch what they are for


MODULES = {"rtrl_ref", "rtrl_ref.cell", "rtrl_ref.rtrl", "rtrl_ref.kernels", "rtrl_ref.kernels.step",
           "rtrl_ref.r2ac", "rtrl_ref.r2ac.core", "rtrl_ref.train", "rtrl_ref.bench", "verify",
           "verify.fd", "envs", "envs.base"}


def _edges(importer: str, source: str, is_package: bool = False):
    edges, missing = parse_imports(source, importer, importer.replace(".", "/") + ".py", MODULES, is_package)
    return edges, missing


def test_parser_counts_imports_inside_functions_and_relative_ones():
    src = "import numpy as np\n\ndef f():\n    from rtrl_ref.kernels import get_backend\n    return get_backend\n"
    edges, _ = _edges("rtrl_ref.rtrl", src)
    assert [(e.imported, e.line) for e in edges] == [("rtrl_ref.kernels", 4)]
    edges, _ = _edges("rtrl_ref.kernels", "from . import step\nfrom ..cell import x\n", is_package=True)
    assert sorted(e.imported for e in edges) == ["rtrl_ref.cell", "rtrl_ref.kernels.step"]
    edges, _ = _edges("rtrl_ref.kernels.step", "from .. import rtrl\n")
    assert [e.imported for e in edges] == ["rtrl_ref.rtrl"]


def test_importing_a_submodule_runs_its_package():
    edges, _ = _edges("rtrl_ref.r2ac.core", "import rtrl_ref.kernels.step\n")
    assert sorted(e.imported for e in edges) == ["rtrl_ref.kernels", "rtrl_ref.kernels.step"]
    e1, _ = _edges("rtrl_ref.kernels", "from rtrl_ref.rtrl import Traces\n", is_package=True)
    e2, _ = _edges("rtrl_ref.rtrl", "def f():\n    from rtrl_ref.kernels.step import go\n")
    (cycle,) = find_cycles(e1 + e2)
    assert "imports rtrl_ref.kernels (as the package of rtrl_ref.kernels.step)" in cycle


def test_parser_reports_a_missing_module():
    _, missing = _edges("rtrl_ref.r2ac.core", "from rtrl_ref.core import Core\n")
    assert [(e.imported, e.line) for e in missing] == [("rtrl_ref.core", 1)]


def test_a_cycle_through_a_function_level_import_is_caught():
    e1, _ = _edges("rtrl_ref.kernels", "from rtrl_ref.rtrl import Traces\n", is_package=True)
    e2, _ = _edges("rtrl_ref.rtrl", "def f():\n    from rtrl_ref.kernels import get_backend\n")
    cycles = find_cycles(e1 + e2)
    assert len(cycles) == 1
    assert "rtrl_ref/kernels.py:1: rtrl_ref.kernels imports rtrl_ref.rtrl" in cycles[0]
    assert "rtrl_ref/rtrl.py:2: rtrl_ref.rtrl imports rtrl_ref.kernels" in cycles[0]
    assert find_cycles(e1) == []


def test_a_three_module_cycle_is_caught():
    edges = [Edge("a", "a.py", 1, "b"), Edge("b", "b.py", 2, "c"), Edge("c", "c.py", 3, "a"),
             Edge("c", "c.py", 4, "d")]
    (cycle,) = find_cycles(edges)
    assert cycle.startswith("cycle a -> b -> c:") and "c.py:3: c imports a" in cycle and "d" not in cycle


def test_upward_imports_are_caught():
    cases = [
        ("rtrl_ref.rtrl", "from verify.fd import fd_grads\n", "verify"),          # library -> verify
        ("rtrl_ref.cell", "import rtrl_ref.r2ac.core\n", "r2ac"),                  # math -> application
        ("rtrl_ref.rtrl", "from envs import base\n", "envs"),                      # math -> envs
        ("envs.base", "from rtrl_ref.cell import cell_step\n", "math"),            # envs -> math
        ("verify.fd", "def f():\n    from rtrl_ref.r2ac import core\n", "r2ac"),   # verify -> application
        ("rtrl_ref.r2ac.core", "from rtrl_ref.bench import x\n", "bench"),         # application -> bench
        ("rtrl_ref.r2ac.core", "from rtrl_ref import train\n", "entry"),           # application -> entry
        ("rtrl_ref.r2ac.core", "import scripts.gpu_check\n", None),                # library -> scripts
    ]
    for importer, src, layer in cases:
        edges, _ = _edges(importer, src)
        lines = layer_violations(edges)
        assert lines and all(line.startswith(importer.replace(".", "/") + ".py:") for line in lines), lines
        assert (f"is layer {layer}" if layer else "may not import scripts") in lines[0], lines


def test_allowed_imports_pass():
    cases = [("rtrl_ref.rtrl", "from rtrl_ref.cell import cell_step\nimport numpy\n"),
             ("rtrl_ref.r2ac.core", "from rtrl_ref import rtrl\nfrom envs import base\n"),
             ("rtrl_ref.train", "from rtrl_ref.r2ac import core\n"),
             ("rtrl_ref.bench", "import verify.fd\nfrom rtrl_ref.r2ac import core\n", ),
             ("verify.fd", "from rtrl_ref.cell import cell_step\n")]
    for importer, src in cases:
        edges, _ = _edges(importer, src, is_package=importer in ("rtrl_ref.bench",))
        assert layer_violations(edges) == [], (importer, src)
