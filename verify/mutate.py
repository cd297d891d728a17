"""python -m verify mutate: mutation testing of the gradient code (a small runner of our own).

Each mutant is one small change to one source file (an operator swapped, a term dropped, a
constant moved by one, an accumulation turned into an assignment, a comparison flipped); the
test files that cover that file (`TARGETS`) then run against it, and must fail. The score of a
file is the share of its mutants killed, equivalent mutants (`EQUIVALENT`, one line each) left
out.

    python -m verify mutate --quick        a seeded sample of QUICK_SAMPLE mutants (minutes)
    python -m verify mutate --full         every mutant (hours on one core)
    options: --seed N  --sample N  --files PATH ...  --timeout S  --minutes M  --report PATH
             --resume PATH.json ...  --shard K/N  --keys KEY ...  --list  --strict (exit 1 if a mutant survives)

A sample is a prefix of one seeded random order of all mutants, so a run stopped early (by
--minutes, or killed: the report is rewritten after every mutant) is still a uniform sample.
`--shard K/N` runs every N-th mutant of that order from the K-th (one process per core); any
fixed set of positions of a uniformly random order is a uniform sample, so the union of shards
stopped at different points is one too. `--resume A.json B.json ...` merges earlier parts: their
killed, crashed and timed-out mutants are reused, their survivors run again first, then the
mutants no part has run; survivors not reached before --minutes are carried over as survivors
(`--minutes 0` only merges).

Why not mutmut or cosmic-ray: both mutate by importing or rewriting modules inside one test
process, and neither knows that a Numba kernel is compiled machine code cached on disk (a
mutant kernel would be silently replaced by the cached original, or need NUMBA_DISABLE_JIT, which
changes the semantics of out-of-bounds indexing); this runner is about 300 lines and does exactly
what is needed:

- mutants are made from the AST (strings, docstrings, `raise` and `assert` statements,
  annotations, decorators and the -1 of `reshape(-1, ...)` are never mutated) and written as
  text edits of one expression, so the report shows the mutated line;
- every mutant runs in a private copy of the repository (the working tree is never touched),
  with PYTHONDONTWRITEBYTECODE=1 and no __pycache__ (a stale .pyc cannot mask a mutant);
- Numba: the unmutated kernels are compiled once into a base NUMBA_CACHE_DIR; a mutant of a
  kernel file runs on a copy of that cache without the mutated module's entries, so the mutant
  kernel is re-jitted (with the JIT on: real kernel semantics), the others load from cache;
- each mutant runs `pytest -x` on its file's tests (the `mutate` Hypothesis profile: CI's,
  derandomized, but a failing example is not shrunk, which took most of a killed mutant's time;
  tests marked gpu or slow left out) under a timeout; a failing test kills it; a crash (signal,
  collection error) or a timeout counts as killed but is reported separately;
- one test process at a time (one core), threads pinned to one, address space capped at
  MEMORY_LIMIT (a mutant of a memory guard then fails with MemoryError, not the OOM killer).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
QUICK_SAMPLE = 60
STATUSES = ("killed", "crashed", "timeout", "survived", "equivalent")
HYPOTHESIS_PROFILE = "mutate"   # tests/conftest.py: the CI profile without shrinking a failing example
COPIED = ("rtrl_ref", "verify", "envs", "tests", "pyproject.toml")

_CORE_TESTS = ("tests/test_rtrl_exact.py", "tests/test_bptt_fd.py", "tests/test_kernels.py", "tests/test_core.py",
               "tests/test_validation.py")
_KERNEL_TESTS = ("tests/test_kernels.py", "tests/test_rtrl_exact.py", "tests/test_core.py")
_CONV_TESTS = ("tests/r2ac/test_conv.py", "tests/r2ac/test_stems.py")
_CELL_TESTS = ("tests/test_cells.py", "tests/test_cells_numba.py", "tests/test_cells_segment.py",
               "tests/test_cells_oracle.py")
TARGETS: dict[str, tuple[str, ...]] = {
    "rtrl_ref/cell.py": _CORE_TESTS,
    "rtrl_ref/bptt.py": _CORE_TESTS,
    "rtrl_ref/unroll.py": (*_CORE_TESTS, "tests/test_memory_api.py"),
    "rtrl_ref/traces.py": (*_CORE_TESTS, "tests/test_memory_api.py"),
    "rtrl_ref/rtrl.py": _CORE_TESTS,
    "rtrl_ref/out_gate.py": _CORE_TESTS,
    "rtrl_ref/kernels/step_numba.py": _KERNEL_TESTS,
    "rtrl_ref/kernels/segment_numba.py": _KERNEL_TESTS,
    "rtrl_ref/kernels/adjoint_numba.py": _KERNEL_TESTS,
    "rtrl_ref/kernels/forward_gemm.py": _KERNEL_TESTS,
    "rtrl_ref/r2ac/core.py": ("tests/test_core.py", "tests/test_learner_exact.py", "tests/test_cells_agent.py",
                              "tests/test_layers_agent.py"),
    "rtrl_ref/r2ac/vtrace.py": ("tests/r2ac/test_vtrace.py",),
    "rtrl_ref/r2ac/loss.py": ("tests/r2ac/test_loss.py",),
    "rtrl_ref/r2ac/optim.py": ("tests/r2ac/test_optim.py",),
    "rtrl_ref/r2ac/conv.py": _CONV_TESTS,
    "rtrl_ref/r2ac/im2col_numba.py": _CONV_TESTS,
    "rtrl_ref/r2ac/pool_numba.py": _CONV_TESTS,
    "rtrl_ref/kernels/online_numba.py": ("tests/test_online_fused.py",),
    "rtrl_ref/kernels/cells_numba.py": _CELL_TESTS,
    "rtrl_ref/cells/lru.py": _CELL_TESTS,
    "rtrl_ref/cells/indrnn.py": _CELL_TESTS,
    "rtrl_ref/cells/mingru.py": _CELL_TESTS,
    "rtrl_ref/cells/segment.py": _CELL_TESTS,
}


# ----------------------------------------------------------------------------- making mutants

class Mutant(NamedTuple):
    path: str          # relative to the repository root
    line: int          # 1-based line of the mutated expression
    operator: str      # which rule made it
    before: str        # the source line(s) before
    after: str         # the same line(s) mutated
    source: str        # the whole mutated file

    @property
    def key(self) -> str:
        """Stable across unrelated edits: file, rule, and the mutated line's text before and after."""
        text = f"{self.path}|{self.operator}|{self.before.strip()}|{self.after.strip()}"
        return hashlib.sha1(text.encode()).hexdigest()[:12]


_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
         ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.MatMult: ast.Mult, ast.BitAnd: ast.BitOr,
         ast.BitOr: ast.BitAnd}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes never mutated: docstrings, raise/assert, annotations, decorators, f-strings."""
    skip: set[int] = set()

    def skip_all(node):
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr, ast.Import, ast.ImportFrom)):
            skip_all(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for d in node.decorator_list:
                skip_all(d)
            if not isinstance(node, ast.ClassDef):
                skip_all(node.returns)
                for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                    skip_all(a.annotation)
        if isinstance(node, ast.AnnAssign):
            skip_all(node.annotation)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "reshape":
            for a in node.args:                  # -1 -> -2: NumPy reads any negative size as "inferred"
                if isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub) and isinstance(a.operand, ast.Constant):
                    skip.add(id(a.operand))
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip_all(first)
    return skip


def _replacements(node: ast.AST) -> Iterable[tuple[str, ast.AST]]:
    """(rule, replacement node) pairs for one node."""
    if isinstance(node, ast.BinOp):
        new = _SWAP.get(type(node.op))
        if new is not None:
            yield "swap operator", ast.BinOp(node.left, new(), node.right)
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            yield "drop right operand", node.left
            yield "drop left operand", node.right
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        new = _CMP.get(type(node.ops[0]))
        if new is not None:
            yield "flip comparison", ast.Compare(node.left, [new()], node.comparators)
    elif isinstance(node, ast.BoolOp):
        yield "swap and/or", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert, ast.Not)):
        yield "drop unary operator", node.operand
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        if isinstance(node.value, bool):
            yield "flip boolean", ast.Constant(not node.value)
        elif isinstance(node.value, int):
            yield "constant + 1", ast.Constant(node.value + 1)
        else:
            yield "constant changed", ast.Constant(node.value + 1.0 if node.value == 0 else 2 * node.value)
    elif isinstance(node, ast.AugAssign):
        yield "accumulate -> assign", ast.Assign([node.target], node.value, lineno=node.lineno)
        new = _SWAP.get(type(node.op))
        if new is not None:
            yield "swap operator", ast.AugAssign(node.target, new(), node.value)


def _offsets(source: str) -> list[int]:
    starts, total = [0], 0
    for line in source.splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def mutants_of(path: str, source: str) -> list[Mutant]:
    """Every mutant of one file, in source order."""
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    starts = _offsets(source)
    lines = source.splitlines(keepends=True)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not hasattr(node, "end_lineno"):
            continue
        for rule, new in _replacements(node):
            text = ast.unparse(ast.fix_missing_locations(new))
            if isinstance(node, ast.expr):
                text = f"({text})" if isinstance(new, (ast.BinOp, ast.Compare, ast.BoolOp)) else text
            a = starts[node.lineno - 1] + len(lines[node.lineno - 1].encode()[:node.col_offset].decode())
            b = starts[node.end_lineno - 1] + len(lines[node.end_lineno - 1].encode()[:node.end_col_offset].decode())
            mutated = source[:a] + text + source[b:]
            first, last = node.lineno - 1, node.end_lineno
            before = "".join(lines[first:last]).rstrip("\n")
            after = mutated[starts[first]:len(mutated) - (len(source) - starts[last])].rstrip("\n")
            if before != after:
                found.append(Mutant(path, node.lineno, rule, before, after, mutated))
    found.sort(key=lambda m: (m.line, m.operator, m.after))
    return found


def all_mutants(root: Path = ROOT, files: Iterable[str] = TARGETS) -> list[Mutant]:
    return [m for f in files for m in mutants_of(f, (root / f).read_text())]


# ----------------------------------------------------------------------------- running them

class Outcome(NamedTuple):
    mutant: Mutant
    status: str        # killed | crashed | timeout | survived | equivalent
    seconds: float
    detail: str        # the first failing test, or the crash's last line


def _copy_tree(root: Path, dst: Path, copied: Iterable[str]) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.nbi", "*.nbc")
    for name in copied:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dst / name)


def _env(cache_dir: Path) -> dict:
    env = dict(os.environ, CI="true", PYTHONDONTWRITEBYTECODE="1", NUMBA_CACHE_DIR=str(cache_dir),
               NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HYPOTHESIS_PROFILE=HYPOTHESIS_PROFILE)
    env.pop("PYTHONPATH", None)
    return env


MEMORY_LIMIT = 16 * 2**30     # address space of one test process: a mutant memory guard raises MemoryError


def _limit_memory() -> None:
    """Cap the test process's address space (a mutated memory guard would otherwise let a test
    allocate tens of GiB and invite the OOM killer onto the whole machine)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_tests(work: Path, tests: Iterable[str], cache_dir: Path, timeout: float) -> tuple[str, float, str]:
    shutil.rmtree(work / ".hypothesis", ignore_errors=True)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--tb=line",
           "-m", "not gpu and not slow", *tests]
    start = time.perf_counter()
    try:
        run = subprocess.run(cmd, cwd=work, env=_env(cache_dir), capture_output=True, text=True, timeout=timeout,
                             preexec_fn=_limit_memory)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, f"over {timeout:.0f} s"
    seconds = time.perf_counter() - start
    tail = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    if run.returncode == 0:
        return "survived", seconds, ""
    failed = [line for line in tail if line.startswith(("FAILED", "ERROR"))]
    if run.returncode == 1 and failed:
        return "killed", seconds, failed[0][:160]
    return "crashed", seconds, f"rc={run.returncode}: " + (tail[-1][:160] if tail else "")


def _is_kernel(source: str) -> bool:
    return "numba.njit" in source


def _cache_without(base: Path, dst: Path, module: str) -> Path:
    """A copy of the base Numba cache without the entries of `module` (so it is re-jitted)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(base, dst, ignore=shutil.ignore_patterns(f"{module}.*"))
    return dst


def run_mutants(mutants: list[Mutant], root: Path = ROOT, targets: dict = TARGETS, timeout: float | None = None,
                equivalent: dict | None = None, log=None, deadline: float | None = None,
                progress=None) -> tuple[list[Outcome], dict]:
    """Run the mutants in order against their files' tests in a private copy of the repository;
    no new mutant starts after `deadline` (time.monotonic()); progress(outcomes) after each."""
    equivalent = EQUIVALENT if equivalent is None else equivalent
    copied = [name for name in COPIED if (root / name).exists()] or [p.split("/")[0] for p in targets]
    outcomes, baseline = [], {}
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        work, base_cache, cache = Path(tmp, "repo"), Path(tmp, "numba-base"), Path(tmp, "numba-mutant")
        work.mkdir()
        tops = {p.split("/")[0] for p in targets} | {t.split("/")[0] for ts in targets.values() for t in ts}
        _copy_tree(root, work, set(copied) | tops)
        timed: dict[tuple, float] = {}                  # one baseline run per set of test files
        for path in sorted({m.path for m in mutants}):
            tests = tuple(targets[path])
            if tests not in timed:
                status, timed[tests], detail = _run_tests(work, tests, base_cache, 1800)
                if status != "survived":
                    raise RuntimeError(f"baseline: the tests of {path} fail on the unmutated code: {detail}")
            baseline[path] = timed[tests]
        for k, m in enumerate(mutants):
            if deadline is not None and time.monotonic() > deadline:
                break
            if progress is not None and outcomes:
                progress(outcomes)
            if m.key in equivalent:
                outcomes.append(Outcome(m, "equivalent", 0.0, equivalent[m.key]))
                continue
            target = work / m.path
            original = target.read_text()
            target.write_text(m.source)
            try:
                kernel = _is_kernel(original)
                cache_dir = _cache_without(base_cache, cache, Path(m.path).stem) if kernel else base_cache
                limit = timeout or 3 * baseline[m.path] + 60
                status, seconds, detail = _run_tests(work, targets[m.path], cache_dir, limit)
            finally:
                target.write_text(original)
            outcomes.append(Outcome(m, status, seconds, detail))
            if log is not None:
                print(f"[{k + 1}/{len(mutants)}] {status:9s} {seconds:5.1f}s {m.path}:{m.line} {m.operator}",
                      file=log, flush=True)
    return outcomes, baseline


def _earlier_outcomes(mutants: list[Mutant], paths: Iterable[Path]) -> tuple[list[Outcome], list[Outcome]]:
    """(reused, carried), in the order of `mutants`, from earlier reports (.json; a later file wins for
    the same key): reused, the mutants they recorded as killed, crashed or timed out; carried, the ones
    they reached that are now justified as equivalent (with today's reason), then their survivors.
    Carried mutants run again first (tests may have changed since) and are reported as they were if not
    reached (an equivalent one is never run)."""
    found: dict[str, dict] = {}
    for path in paths:
        try:
            rows = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"--resume: expected a report .json written by --report, got {path} ({err})") from err
        found.update({r["key"]: r for r in rows if r.get("status") in STATUSES})

    def outcomes(statuses):
        return [Outcome(m, found[m.key]["status"], float(found[m.key]["seconds"]), found[m.key]["detail"])
                for m in mutants if m.key in found and m.key not in EQUIVALENT and found[m.key]["status"] in statuses]

    equivalent = [Outcome(m, "equivalent", 0.0, EQUIVALENT[m.key]) for m in mutants
                  if m.key in found and m.key in EQUIVALENT]
    return outcomes(("killed", "crashed", "timeout")), equivalent + outcomes(("survived",))


def _shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise SystemExit(f"--shard: expected K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
    return k, n


# ----------------------------------------------------------------------------- the report

def score(outcomes: list[Outcome]) -> tuple[int, int, float]:
    """(killed incl. crashes and timeouts, non-equivalent mutants, percentage)."""
    counted = [o for o in outcomes if o.status != "equivalent"]
    killed = sum(o.status in ("killed", "crashed", "timeout") for o in counted)
    return killed, len(counted), 100.0 * killed / max(1, len(counted))


def report(outcomes: list[Outcome], header: str) -> str:
    files = sorted({o.mutant.path for o in outcomes})
    rows = ["| file | mutants | killed by a test | crashed | timed out | equivalent | survived | score |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for f in files + ["all"]:
        group = [o for o in outcomes if f in ("all", o.mutant.path)]
        n = {s: sum(o.status == s for o in group) for s in ("killed", "crashed", "timeout", "equivalent", "survived")}
        killed, counted, pct = score(group)
        name = f"**{f}**" if f == "all" else f"`{f}`"
        rows.append(f"| {name} | {len(group)} | {n['killed']} | {n['crashed']} | {n['timeout']} | {n['equivalent']} "
                    f"| {n['survived']} | {pct:.1f}% ({killed}/{counted}) |")
    lines = [header, "", *rows, ""]

    def listing(title: str, status: str, with_detail: bool):
        chosen = [o for o in outcomes if o.status == status]
        lines.extend([f"## {title} ({len(chosen)})", ""])
        for o in chosen:
            m = o.mutant
            lines.append(f"- `{m.path}:{m.line}` {m.operator} [{m.key}]: `{m.before.strip()}` -> "
                         f"`{m.after.strip()}`" + (f": {o.detail}" if with_detail and o.detail else ""))
        lines.append("")

    listing("Survivors", "survived", False)
    listing("Equivalent mutants (justified, left out of the score)", "equivalent", True)
    listing("Killed by a crash or a collection error (counted as killed)", "crashed", True)
    listing("Killed by the timeout (counted as killed)", "timeout", True)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m verify mutate", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help=f"a seeded sample of {QUICK_SAMPLE} mutants (default)")
    mode.add_argument("--full", action="store_true", help="every mutant")
    ap.add_argument("--sample", type=int, default=None, help="sample size (overrides --quick's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--files", nargs="+", default=None, help=f"files to mutate (default: {len(TARGETS)} files)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 3x baseline + 60)")
    ap.add_argument("--report", type=Path, default=None,
                    help="write the Markdown report here (and every outcome to the same name .json)")
    ap.add_argument("--keys", nargs="+", default=None, help="only the mutants with these keys (see --list)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--minutes", type=float, default=None,
                    help="start no new mutant after this many minutes (the report says how many ran)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any mutant survives (for CI)")
    ap.add_argument("--resume", type=Path, nargs="+", default=None,
                    help="earlier reports' .json files: their killed, crashed and timed-out mutants (same keys) are "
                         "reused, their survivors run again first, then the rest (to finish a long --full run in "
                         "parts; with --minutes 0 only merges them)")
    ap.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                    help="only every N-th mutant of the seeded order, from the K-th (one process per core)")
    args = ap.parse_args(argv)
    files = args.files or list(TARGETS)
    unknown = [f for f in files if f not in TARGETS]
    if unknown:
        raise SystemExit(f"--files: expected paths among {sorted(TARGETS)}, got {unknown}")
    mutants = all_mutants(ROOT, files)
    total = len(mutants)
    if args.keys:
        mutants = [m for m in mutants if m.key in set(args.keys)]
    else:
        random.Random(args.seed).shuffle(mutants)      # any prefix of this order is a uniform sample
        if not args.full:
            mutants = mutants[:args.sample or QUICK_SAMPLE]
    if args.shard:
        k, n = args.shard
        mutants = mutants[k - 1::n]
    if args.list:
        for m in mutants:
            print(f"{m.key} {m.path}:{m.line} {m.operator}: {m.before.strip()} -> {m.after.strip()}")
        return 0
    reused, carried = _earlier_outcomes(mutants, args.resume) if args.resume else ([], [])
    done_keys = {o.mutant.key for o in reused + carried}
    to_run = [o.mutant for o in carried] + [m for m in mutants if m.key not in done_keys]
    start = time.perf_counter()
    command = " ".join(["python -m verify mutate", *(argv if argv is not None else sys.argv[1:])])

    def write(outcomes, done: bool) -> str:
        minutes = (time.perf_counter() - start) / 60
        killed, counted, pct = score(outcomes)
        if args.keys:
            kind = f"{len(mutants)} chosen mutants"
        elif args.full:
            kind = f"every mutant ({total})"
        else:
            kind = f"a seeded sample (seed {args.seed}) of {len(mutants)} of {total} mutants"
        if args.shard:
            kind += f", shard {args.shard[0]}/{args.shard[1]} ({len(mutants)} mutants)"
        if len(outcomes) < len(mutants):
            kind += (f"; {'stopped by --minutes' if done else 'in progress'} with {len(outcomes)} outcomes, "
                     f"fixed positions of a seeded random order (seed {args.seed}): a uniform random sample")
        if reused or carried:
            names = ", ".join(str(p) for p in args.resume)
            kind += (f"; {len(reused)} killed outcomes reused from {names} (their {len(carried)} survivors and "
                     f"equivalents ran again first, any not reached carried over as they were)")
        header = (f"# Mutation testing report\n\n`{command}`: {kind}, {minutes:.1f} min on one core "
                  f"(Python {sys.version.split()[0]}). Score {pct:.1f}% ({killed} of {counted} non-equivalent "
                  f"mutants killed; crashes and timeouts count as killed and are listed separately). How mutants "
                  f"are made and run: verify/mutate.py.")
        text = report(outcomes, header)
        if args.report:
            args.report.write_text(text + "\n")
            rows = [dict(key=o.mutant.key, path=o.mutant.path, line=o.mutant.line, operator=o.mutant.operator,
                         before=o.mutant.before.strip(), after=o.mutant.after.strip(), status=o.status,
                         seconds=round(o.seconds, 1), detail=o.detail) for o in outcomes]
            args.report.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
        return text

    deadline = None if args.minutes is None else time.monotonic() + 60 * args.minutes

    def merged(ran: list[Outcome]) -> list[Outcome]:
        rerun = {o.mutant.key for o in ran}
        return reused + ran + [o for o in carried if o.mutant.key not in rerun]

    if deadline is not None and args.minutes <= 0:
        ran = []                                        # merge only: no baseline runs either
    else:
        ran, _ = run_mutants(to_run, ROOT, TARGETS, args.timeout, log=sys.stderr, deadline=deadline,
                             progress=lambda done: write(merged(done), False))
    outcomes = merged(ran)
    write(outcomes, True)
    minutes = (time.perf_counter() - start) / 60
    killed, counted, pct = score(outcomes)
    print(f"score {pct:.1f}% ({killed}/{counted}), {sum(o.status == 'survived' for o in outcomes)} survivors, "
          f"{minutes:.1f} min" + (f"; report {args.report}" if args.report else ""))
    return 1 if args.strict and any(o.status == "survived" for o in outcomes) else 0


# ----------------------------------------------------------------------------- equivalent mutants

# key (Mutant.key) -> why the mutant cannot change any result (one line each).
EQUIVALENT: dict[str, str] = {
    "d7c378f4ff57": "loss.py: astype(copy=True) instead of copy=False returns equal values (a copy, not a view)",
    "2fbdfad6da80": "conv.py pool backward reference: a taller scratch buffer, extra rows never written or read",
    "51ffad8563b8": "conv.py pool backward reference: a wider scratch buffer, extra columns never written or read",
    "963263d1453b": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "1a54296ab1eb": "step_numba fast path declined: the full argument check runs instead, same arrays, same results",
    "0eb02dee4baf": "step_numba fast path declined for every array g_c_t: the full argument check runs instead, same "
                    "arrays, same results",
    "3bf33a560d1b": "step_numba fast path declined: the full argument check runs instead, same arrays, same results",
    "9df8ce99025e": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "9de47098a2a1": "segment_numba carry_traces default: every caller passes parallel=; both variants equal NumPy",
    "23fb8029f67b": "segment_numba scratch u_sums with a fifth row that nothing writes or reads",
    "bb2aa531922f": "step_numba BLOCK_BYTES: only how units are grouped into blocks, each unit's arithmetic unchanged",
    "a874ed517973": "step_numba chunk count from I, not H: every count covers each unit once (1-3 chunks tested)",
    "b7974ea55d68": "loss.py: astype(copy=True) instead of copy=False returns equal values (a copy, not a view)",
    "3605c068461c": "step_numba fast path declined: the full argument check runs instead, same arrays, same results",
    "6031b21b4817": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "fab9eda41927": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "86eae1a73fde": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "3d8af1e6233b": "loss.py: a finiteness check on integer actions, which are always finite",
    "16b205eb008c": "segment_numba serial pass via the parallel kernel with 1 chunk: same loops, same order",
    "57e1f4804c00": "segment_numba serial entry running the parallel variant: both equal NumPy (tested), same results",
    "42cc75344269": "step_numba BLOCK_BYTES: only how units are grouped into blocks, each unit's arithmetic unchanged",
    "120a4cfec855": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "bdc94990e74f": "conv.py keep_cols heuristic: only whether patches are kept or recomputed (equal by a test)",
    "dce02deee5e7": "segment_numba fast path declined: the full argument check runs instead, same arrays, same results",
    "4702033c09f0": "online_numba N_HYPER: a hyperparameter buffer with a tenth slot that nothing writes or reads",
    "49e149e71143": "core.py overwrite_traces=False: the carried-in traces are copied, not updated in place; same "
                    "values (the learner never reads them after the call)",
    "5c5c6d0930f7": "online_numba OnlineStep._S_W with a third (B, H, I) slab that nothing writes or reads (the "
                    "trace views are slabs 0 and 1)",
}
