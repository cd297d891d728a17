"""The gradient-correctness audit: the whole verification matrix, as one report.

    python -m verify audit [--quick | --full] [--backend numpy,numba,cupy] [--dtype float64]
                           [--seed 0] [--report PATH]

Families of checks (verify.checks, as rows by verify.audit_checks), each over problems drawn from a seed:

    bptt vs finite differences      float64, every parameter, x and c_0
    rtrl step / segment vs bptt     float64 and float32, every reset pattern and gate regime
    dense rtrl vs rtrl              the naive influence-matrix reference (tiny H)
    <backend> vs numpy              every available backend (cupy only with a GPU): drivers and kernels
    tbptt bias                      TBPTT(k < T) measurably differs, TBPTT(T) equals BPTT
    cells: bptt vs finite differences   IndRNN, minGRU, LRU (rtrl_ref.cells): float64, every parameter,
                                    x and Re/Im s_0; short, saturated and long (J_t near 1)
    cells: rtrl step form vs bptt   the same cells, numpy and numba steps, float64 and float32, run as
                                    consecutive calls (state and traces carried), resets per row
    oracle golden cases             the committed cases against the current code
    negative twins                  each check run on a deliberately wrong gradient must fail

Prints a table (check, sizes, tensor, max abs and rel error, tolerance, verdict) and can write
it as Markdown and JSON. Exit status 0 only if every row passes (skipped rows do not fail).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.kernels import BACKENDS, available_backends
from verify import broken, cell_broken
from verify.audit_checks import (
    Row,
    backend_vs_numpy,
    bptt_vs_fd,
    cell_bptt_vs_fd,
    cell_rtrl_vs_bptt,
    cell_setup,
    dense_vs_rtrl,
    failed,
    oracle_golden,
    row,
    rtrl_segment_vs_bptt,
    rtrl_step_vs_bptt,
    setup,
    skipped,
    tbptt_bias,
)
from verify.cell_checks import CELL_NAMES, CELL_REGIMES, CELL_RESETS
from verify.checks import LIBRARY, Drivers, check_backend_carried_pass, check_backend_step
from verify.compare import tolerance
from verify.problem import REGIMES, RESET_PATTERNS

DTYPES = ("float64", "float32")


class Options(NamedTuple):
    mode: str = "quick"               # quick | full
    backends: tuple = BACKENDS        # requested backends (unavailable ones are skipped)
    dtypes: tuple = DTYPES
    seed: int = 0


class Family(NamedTuple):
    name: str
    run: Callable[[], list]           # () -> list[Row]
    label: str = ""                   # what a failure to run is reported against


def plan(opt: Options, impl: Drivers, available: list) -> list[Family]:
    """The matrix of the given mode as deferred calls, in report order."""
    full = opt.mode == "full"
    seed = opt.seed
    fams: list[Family] = []
    run_backends = [b for b in opt.backends if b in available]
    f64 = "float64" in opt.dtypes

    # 1. BPTT vs finite differences (float64 only)
    if f64:
        fd_setups = [setup(seed, 6, 2, 3, 4, resets="middle"),
                     setup(seed + 1, 5, 1, 2, 3, regime="saturated", resets="random")]
        if full:
            fd_setups = [setup(seed + 10 + k, 5, 2, 2, 3, regime=r, resets=pat)
                         for k, (r, pat) in enumerate((r, pat) for r in REGIMES for pat in RESET_PATTERNS)]
            fd_setups.append(setup(seed + 40, 20, 3, 5, 6, resets="random"))
            fd_setups.append(setup(seed + 41, 1000, 2, 3, 4, regime="forget_open", resets="random"))
        for s in fd_setups:
            T = s.prob.x.shape[0]
            entries = None if T <= 10 else 20 if T <= 100 else 6
            fams.append(Family("bptt vs finite differences",
                               lambda s=s, e=entries: bptt_vs_fd(s, impl, e, seed), s.label))
    else:
        fams.append(Family("bptt vs finite differences", lambda: [skipped(
            "bptt vs finite differences", "-", "float32", "numpy", "float64 only (--dtype)")]))

    # 2. RTRL vs BPTT, step and segment forms, every backend that runs here
    for dtype in opt.dtypes:
        sets = [setup(seed + 2, 12, 3, 4, 5, dtype, resets="random"),
                setup(seed + 3, 10, 2, 3, 4, dtype, regime="saturated", resets="middle")]
        if full:
            sets = [setup(seed + 100 + k, 6 + 5 * (k % 4), 1 + k % 3, 2 + k % 4, 3 + k % 5,
                          dtype, regime=r, resets=pat)
                    for k, (r, pat) in enumerate((r, pat) for r in REGIMES for pat in RESET_PATTERNS)]
            sets.append(setup(seed + 200, 1000, 2, 8, 16, dtype, regime="forget_open", resets="random"))
        for backend in run_backends:
            for s in (sets if backend == "numpy" or full else sets[:1]):
                fams.append(Family("rtrl step form vs bptt",
                                   lambda s=s, b=backend: rtrl_step_vs_bptt(s, impl, b), s.label))
        seg_sets = sets[:1] if not full else [sets[k] for k in range(0, len(sets), 4)] + [sets[-1]]
        for backend in run_backends:
            for s in seg_sets:
                unroll = max(2, s.prob.x.shape[0] // 3 + 1) if s.prob.x.shape[0] < 100 else 50
                fams.append(Family("rtrl segment form vs bptt",
                                   lambda s=s, b=backend, u=unroll: rtrl_segment_vs_bptt(s, u, impl, b),
                                   s.label))

    # 2b. the dense influence-matrix reference (float64, tiny H)
    if f64:
        dense_sets = [setup(seed + 4, 6, 2, 2, 3, resets="middle")]
        if full:
            dense_sets = [setup(seed + 300 + k, 6, 2, 2, 3, regime=r, resets=pat)
                          for k, (r, pat) in enumerate(zip(REGIMES * 2, RESET_PATTERNS))]
        for s in dense_sets:
            fams.append(Family("dense rtrl vs rtrl", lambda s=s: dense_vs_rtrl(s, impl), s.label))

    # 3. every backend vs the NumPy reference
    for backend in [b for b in opt.backends if b != "numpy"]:
        for dtype in opt.dtypes:
            if backend not in available:
                fams.append(Family(f"{backend} vs numpy", lambda b=backend, d=dtype: [skipped(
                    f"{b} vs numpy", "-", d, b, "not available" + (" (no GPU)" if b == "cupy" else ""))]))
                continue
            sets = [setup(seed + 5, 12, 3, 4, 5, dtype, resets="random")]
            if full:
                sets += [setup(seed + 400 + k, 20, 1 + k, 6, 7, dtype, regime=r, resets=pat)
                         for k, (r, pat) in enumerate(zip(REGIMES, ("none", "first", "last", "every")))]
                sets.append(setup(seed + 450, 200, 4, 16, 32, dtype, resets="random"))
            for s in sets:
                fams.append(Family(f"{backend} vs numpy",
                                   lambda s=s, b=backend: backend_vs_numpy(s, b, impl), s.label))

    # 4. truncation bias of TBPTT(k)
    for dtype in opt.dtypes:
        ks = ((40, 10),) if not full else ((40, 1), (40, 10), (40, 30), (200, 50))
        modes = ("window", "unroll") if dtype == "float64" or full else ("window",)
        for T, k in ks:
            for mode in modes:
                fams.append(Family("tbptt bias", lambda T=T, k=k, d=dtype, m=mode: tbptt_bias(
                    seed + 6, T, k, d, m, impl), f"T={T} k={k} {mode}"))

    # 4b. the IndRNN, minGRU and LRU (rtrl_ref.cells)
    fams += cell_plan(opt, run_backends)

    # 5. golden oracle cases against the current code (and the JAX adapter in --full)
    fams.append(Family("oracle golden cases", lambda: oracle_golden(None), "golden set"))
    if full:
        fams.append(Family("oracle golden cases", lambda: oracle_golden("jax_elstm"), "golden set"))

    # 6. negative twins: every check must fail on a deliberately wrong gradient
    fams.append(Family("negative twins", lambda: negative_twins(opt, available), "negative twins"))
    return fams


CELL_BACKENDS = ("numpy", "numba")      # the cells' online step backends (rtrl_ref.cells.drivers)


def cell_cuts(T: int) -> tuple:
    """Where a cell's RTRL run is cut into consecutive calls: thirds (state and traces carried)."""
    return tuple(sorted({T // 3, 2 * T // 3} - {0}))


def cell_plan(opt: Options, backends: list) -> list[Family]:
    """The cells' rows: BPTT vs finite differences (float64) and the step form vs BPTT on every
    cell backend that runs here, per cell over short, saturated and long (J_t near 1) problems with
    resets per row; --full adds every regime and reset pattern and T = 1000."""
    full = opt.mode == "full"
    seed = opt.seed + 500
    fams: list[Family] = []
    combos = [(r, pat) for r in CELL_REGIMES for pat in CELL_RESETS]
    for k, name in enumerate(CELL_NAMES):
        if "float64" in opt.dtypes:
            fd = [cell_setup(name, seed + k, 6, 2, 2, 3, regime="normal", resets="rows"),
                  cell_setup(name, seed + 10 + k, 5, 2, 2, 2, regime="saturated", resets="random"),
                  cell_setup(name, seed + 20 + k, 60, 2, 2, 2, regime="slow", resets="rows")]
            if full:
                fd += [cell_setup(name, seed + 100 + 30 * k + j, 5, 2, 2, 2, regime=r, resets=pat)
                       for j, (r, pat) in enumerate(combos)]
                fd.append(cell_setup(name, seed + 200 + k, 300, 2, 2, 2, regime="slow", resets="rows"))
            for s in fd:
                entries = None if s.prob.x.shape[0] <= 10 else 12
                fams.append(Family("cells: bptt vs finite differences",
                                   lambda s=s, e=entries: cell_bptt_vs_fd(s, max_entries=e, seed=seed), s.label))
        for dtype in opt.dtypes:
            sets = [cell_setup(name, seed + 30 + k, 12, 3, 3, 4, dtype, "normal", "rows"),
                    cell_setup(name, seed + 40 + k, 10, 2, 3, 4, dtype, "saturated", "random"),
                    cell_setup(name, seed + 50 + k, 200, 2, 3, 4, dtype, "slow", "rows")]
            if full:
                sets += [cell_setup(name, seed + 300 + 30 * k + j, 6 + 5 * (j % 4), 1 + j % 3, 2 + j % 4,
                                    3 + j % 5, dtype, r, pat) for j, (r, pat) in enumerate(combos)]
                sets.append(cell_setup(name, seed + 400 + k, 1000, 2, 3, 4, dtype, "slow", "rows"))
            for backend in [b for b in backends if b in CELL_BACKENDS]:
                for s in sets:
                    fams.append(Family("cells: rtrl step form vs bptt", lambda s=s, b=backend: cell_rtrl_vs_bptt(
                        s, b, cuts=cell_cuts(s.prob.x.shape[0])), s.label))
    if "float64" not in opt.dtypes:
        fams.append(Family("cells: bptt vs finite differences", lambda: [skipped(
            "cells: bptt vs finite differences", "-", "float32", "numpy", "float64 only (--dtype)")]))
    return fams


def cell_negative_twins(opt: Options, available: list) -> list[Row]:
    """Per cell: a backward with a dropped term must fail the finite-difference row; a trace update
    with a dropped term, traces not reset, and traces not carried across calls must fail the step
    form's row on every cell backend; a candidate with a dropped term must fail the oracle, located."""
    seed = opt.seed + 570
    backends = [b for b in CELL_BACKENDS if b in opt.backends and b in available]
    out = []
    for name in CELL_NAMES:
        s = cell_setup(name, seed, 8, 2, 3, 4, resets="rows")
        out.append(negative(f"{name}: bptt vs finite differences", cell_broken.BUGS[name],
                            cell_bptt_vs_fd(s, cell=cell_broken.wrong_backward(name))))
        for dtype in opt.dtypes:
            s = cell_setup(name, seed, 8, 2, 3, 4, dtype, resets="rows")
            for backend in backends:
                for bug, wrong in ((cell_broken.DROPPED[name], cell_broken.rtrl_dropped_term),
                                   ("traces not reset at a reset", cell_broken.rtrl_no_trace_reset),
                                   ("carried-in traces ignored", cell_broken.rtrl_traces_not_carried)):
                    out.append(negative(f"{name}: rtrl step form vs bptt", f"{bug} ({backend} step)",
                                        cell_rtrl_vs_bptt(s, backend, wrong(backend), cuts=(4,))))
        out.append(cell_oracle_negative(name))
    return out


def cell_oracle_negative(name: str) -> Row:
    """The oracle checker must fail the cell candidate of verify.adapters.cell_buggy on the cell's
    basic golden case, and locate it: the first trace of the parameter the bug is in, at its step."""
    from verify.adapters.cell_buggy import BUGGY
    from verify.oracle import check_candidate, load_case

    bug, field, step = {"indrnn": ("indrnn_J_is_u", "trace_W", 1), "mingru": ("mingru_J_is_z", "trace_W_z", 1),
                        "lru": ("lru_gamma_constant", "trace_nu_re", 0)}[name]
    case = load_case(f"cell-{name}-basic-f64")
    rep = check_candidate(case, BUGGY[bug](case))
    first = rep.first_divergence()
    located = not rep.ok and first is not None and first.name == field and first.first.step == step
    t = first or rep.tensors[0]
    return Row(f"negative twin: oracle check ({name})", case.name, "float64", "numpy", bug, t.max_abs, t.rel,
               t.tol, "must fail", "pass" if located else "FAIL",
               rep.summary() if located else f"not located at {field}, t={step}: {rep.summary()}")


def negative(check: str, bug: str, rows: list) -> Row:
    """A negative twin passes when the check it wraps failed."""
    bad = [r for r in rows if not r.ok]
    worst = max(bad or rows, key=lambda r: (r.rel or 0) / (r.tol or 1))
    detected = bool(bad)
    return Row(f"negative twin: {check}", worst.sizes, worst.dtype, worst.backend, bug,
               worst.max_abs, worst.rel, worst.tol, "must fail", "pass" if detected else "FAIL",
               f"detected in {len(bad)} of {len(rows)} tensors" if detected
               else "NOT detected: this check cannot fail on this bug")


def negative_twins(opt: Options, available: list) -> list[Row]:
    seed = opt.seed
    s = setup(seed + 7, 8, 2, 3, 4, resets="random")
    tiny = setup(seed + 4, 6, 2, 2, 3, resets="middle")
    rows = [
        negative("bptt vs finite differences", "J without gz*w_z",
                 bptt_vs_fd(s, LIBRARY._replace(problem_grads=broken.bptt_grads_no_wz_term))),
        negative("rtrl step form vs bptt", "J without gz*w_z", rtrl_step_vs_bptt(
            s, broken.mutant_drivers("drop_wz_term", s.prob.p))),
        negative("rtrl step form vs bptt", "traces not reset at a reset", rtrl_step_vs_bptt(
            s, broken.mutant_drivers("no_trace_reset", s.prob.p))),
        negative("rtrl step form vs bptt", "traces reset one step late", rtrl_step_vs_bptt(
            s, broken.mutant_drivers("reset_off_by_one", s.prob.p))),
        negative("rtrl segment form vs bptt", "carried-in traces ignored", rtrl_segment_vs_bptt(
            s, 3, LIBRARY._replace(rtrl_segment=broken.rtrl_segment_drop_carried))),
        negative("dense rtrl vs rtrl", "J without gz*w_z", dense_vs_rtrl(
            tiny, broken.mutant_drivers("drop_wz_term", tiny.prob.p))),
        negative("tbptt bias", "tbptt that does not truncate", [r for r in tbptt_bias(
            seed + 6, 40, 10, impl=LIBRARY._replace(tbptt=broken.tbptt_untruncated)) if r.relation == ">="]),
        negative("tbptt(k=T) vs bptt", "window of k-1 steps", [r for r in tbptt_bias(
            seed + 6, 40, 10, impl=LIBRARY._replace(tbptt=broken.tbptt_off_by_one)) if r.relation == "<="]),
    ]
    kernel_backend = next((b for b in opt.backends if b != "numpy" and b in available), "numpy")
    for dtype in opt.dtypes:
        eps = 10 * tolerance("kernel", dtype)
        wrong = [r for r in backend_vs_numpy(setup(seed + 5, 12, 3, 4, 5, dtype), kernel_backend,
                                             broken.off_by(eps)) if r.check.endswith("(drivers)")]
        rows.append(negative(f"{kernel_backend} vs numpy", f"drivers' outputs off by {eps:.0e} relative", wrong))
        rows.append(negative(f"{kernel_backend} step kernel vs numpy", "reset skipped", [
            row("step kernel", "B=3 H=5 I=7", dtype, kernel_backend, c) for c in check_backend_step(
                broken.backend_skipping_reset(kernel_backend), 3, 5, 7, dtype, seed, pattern="every")]))
        rows.append(negative(f"{kernel_backend} carried pass vs numpy", "carried-in traces not decayed", [
            row("carried pass", "T=4 B=2 H=3 I=5", dtype, kernel_backend, c) for c in check_backend_carried_pass(
                broken.backend_undecayed_carried(kernel_backend), 4, 2, 3, 5, dtype, seed)]))
    rows.append(oracle_negative())
    return rows + cell_negative_twins(opt, available)


def oracle_negative() -> Row:
    """The oracle checker must fail a candidate with c wrong at one step, and locate it."""
    from verify.oracle import check_candidate, compute_outputs, load_case

    case = load_case("basic-f64")
    out = compute_outputs(case.problem, case.trace_steps)
    out["c"] = out["c"].copy()
    out["c"][5, 1, 2] += 1e-6
    rep = check_candidate(case, out)
    first = rep.first_divergence()
    located = (not rep.ok and first is not None and first.name == "c"
               and first.first.step == 5 and first.first.index == (5, 1, 2))
    t = next(t for t in rep.tensors if t.name == "c")
    return Row("negative twin: oracle check", "basic-f64", "float64", "numpy",
               "c off by 1e-6 at t=5, b=1, h=2", t.max_abs, t.rel, t.tol, "must fail",
               "pass" if located else "FAIL",
               rep.summary() if located else f"not located: {rep.summary()}")


# ---------------------------------------------------------------------------------------------
# Running and reporting


class AuditResult(NamedTuple):
    options: Options
    rows: list
    seconds: float
    available: list
    environment: dict

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def counts(self) -> dict:
        return {"rows": len(self.rows), "passed": sum(r.verdict == "pass" for r in self.rows),
                "failed": sum(r.verdict == "FAIL" for r in self.rows),
                "skipped": sum(r.verdict.startswith("skipped") for r in self.rows)}

    def summary_table(self) -> str:
        """The per-family summary as plain text."""
        lines = [f"{'family':<34} {'rows':>5} {'passed':>6} {'failed':>6} {'skipped':>7} "
                 f"{'max rel/tol':>11} {'min bias/threshold':>18}"]
        for f in self.families():
            lines.append(f"{f['family']:<34} {f['rows']:>5} {f['passed']:>6} {f['failed']:>6} "
                         f"{f['skipped']:>7} {_num(f['max_rel_over_tol']):>11} "
                         f"{_num(f['min_bias_over_threshold']):>18}")
        return "\n".join(lines)

    def summary(self) -> str:
        c = self.counts()
        verdict = "PASS" if self.ok else "FAIL"
        return (f"audit --{self.options.mode} {verdict}: {c['rows']} checks, {c['passed']} passed, "
                f"{c['failed']} failed, {c['skipped']} skipped; backends run: "
                f"{', '.join(b for b in self.options.backends if b in self.available) or 'none'}; "
                f"{self.seconds:.1f} s")

    def families(self) -> list[dict]:
        """Per family: rows, passed, failed, skipped; the largest rel/tol of agreement rows
        (must be <= 1) and the smallest rel/threshold of bias rows (must be >= 1)."""
        out: dict = {}
        for r in self.rows:
            f = out.setdefault(r.family, {"family": r.family, "rows": 0, "passed": 0, "failed": 0,
                                          "skipped": 0, "max_rel_over_tol": None,
                                          "min_bias_over_threshold": None})
            f["rows"] += 1
            f["passed"] += r.verdict == "pass"
            f["failed"] += r.verdict == "FAIL"
            f["skipped"] += r.verdict.startswith("skipped")
            if r.rel is None or not r.tol:
                continue
            if r.relation == "<=":
                f["max_rel_over_tol"] = max(f["max_rel_over_tol"] or 0.0, r.rel / r.tol)
            elif r.relation == ">=":
                v = r.rel / r.tol
                f["min_bias_over_threshold"] = v if f["min_bias_over_threshold"] is None else min(
                    f["min_bias_over_threshold"], v)
        return list(out.values())


def environment() -> dict:
    import numba

    return {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "machine": platform.machine(),
            "system": platform.system(), "processor": platform.processor() or "unknown"}


def run_audit(opt: Options | None = None, impl: Drivers = LIBRARY) -> AuditResult:
    opt = Options() if opt is None else opt
    t0 = time.perf_counter()
    available = available_backends()
    rows: list[Row] = []
    for fam in plan(opt, impl, available):
        try:
            got = fam.run()
        except Exception as e:  # a crashing check is a failed check
            got = [failed(fam.name, fam.label, "-", "-", e)]
        rows += [r._replace(family=fam.name) for r in got]
    return AuditResult(opt, rows, time.perf_counter() - t0, available, environment())


def _num(v, fmt=".2e") -> str:
    return "-" if v is None else format(v, fmt)


def to_text(res: AuditResult) -> str:
    head = (f"{'check':<44} {'sizes':<58} {'dtype':<7} {'backend':<7} {'tensor':<30} "
            f"{'max abs':>9} {'rel':>9} {'tol':>12}  verdict")
    lines = [head, "-" * len(head)]
    for r in res.rows:
        tol = ("-" if r.tol is None else f"{r.relation} {r.tol:.0e}" if r.relation in ("<=", ">=")
               else f"{r.tol:.0e} {r.relation}")
        lines.append(f"{r.check[:44]:<44} {r.sizes[:58]:<58} {r.dtype:<7} {r.backend:<7} "
                     f"{r.tensor[:30]:<30} {_num(r.max_abs):>9} {_num(r.rel):>9} {tol:>12}  "
                     f"{r.verdict}{'  (' + r.note + ')' if r.verdict == 'FAIL' and r.note else ''}")
    lines += ["", res.summary_table(), res.summary()]
    return "\n".join(lines)


def to_markdown(res: AuditResult) -> str:
    o = res.options
    env = ", ".join(f"{k} {v}" for k, v in res.environment.items())
    lines = [f"# Gradient-correctness audit (`--{o.mode}`)", "",
             f"Command: `python -m verify audit --{o.mode} --seed {o.seed} "
             f"--dtype {','.join(o.dtypes)} --backend {','.join(o.backends)}`  ",
             f"Environment: {env}  ",
             f"Backends available: {', '.join(res.available)}  ",
             "Tolerances: rel = max|a - b| / max|b| (verify.compare); `>=` rows are biases that "
             "must be measurable; negative twins must fail.", "",
             f"**{res.summary()}**", "", "## Summary by family", "",
             "| family | rows | passed | failed | skipped | max rel/tol | min bias/threshold |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for f in res.families():
        lines.append(f"| {f['family']} | {f['rows']} | {f['passed']} | {f['failed']} | "
                     f"{f['skipped']} | {_num(f['max_rel_over_tol'])} | "
                     f"{_num(f['min_bias_over_threshold'])} |")
    lines += ["", "## Every check", "",
              "| check | sizes | dtype | backend | tensor | max abs | rel | tol | verdict |",
              "|---|---|---|---|---|---:|---:|---|---|"]
    for r in res.rows:
        tol = "-" if r.tol is None else f"{r.relation} {r.tol:.0e}"
        verdict = r.verdict + (f" ({r.note})" if r.verdict == "FAIL" and r.note else "")
        lines.append(f"| {r.check} | {r.sizes} | {r.dtype} | {r.backend} | {r.tensor} | "
                     f"{_num(r.max_abs)} | {_num(r.rel)} | {tol} | {verdict} |")
    return "\n".join(lines) + "\n"


def to_dict(res: AuditResult) -> dict:
    """JSON form; rows are lists in the order of `columns` (Row's fields), to keep it small."""
    return {"options": res.options._asdict(), "ok": res.ok, "summary": res.summary(),
            "counts": res.counts(), "seconds": res.seconds, "available_backends": res.available,
            "environment": res.environment, "families": res.families(),
            "columns": list(Row._fields), "rows": [list(r) for r in res.rows]}


def write_report(res: AuditResult, path) -> list[Path]:
    """PATH.md -> Markdown, PATH.json -> JSON, no suffix -> both."""
    path = Path(path)
    targets = [path] if path.suffix in (".md", ".json") else [path.with_name(path.name + ".md"),
                                                               path.with_name(path.name + ".json")]
    for t in targets:
        t.parent.mkdir(parents=True, exist_ok=True)
        if t.suffix == ".md":
            t.write_text(to_markdown(res))
        else:
            t.write_text(json.dumps(to_dict(res), separators=(",", ":")) + "\n")
    return targets


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m verify audit", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="small matrix, under a minute (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="every reset pattern, gate regime and dtype; long sequences")
    ap.add_argument("--backend", default="all", help=f"comma-separated subset of {BACKENDS}, or all")
    ap.add_argument("--dtype", default="all", help="float64, float32 or all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", default=None,
                    help="write the report: PATH.md, PATH.json, or PATH (both)")
    ap.add_argument("--failures-only", action="store_true", help="print only failing rows")
    return ap


def parse_options(args) -> Options:
    backends = BACKENDS if args.backend == "all" else tuple(b.strip() for b in args.backend.split(","))
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise ValueError(f"--backend: expected names from {BACKENDS} or 'all', got {bad}")
    dtypes = DTYPES if args.dtype == "all" else tuple(d.strip() for d in args.dtype.split(","))
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise ValueError(f"--dtype: expected float64, float32 or all, got {bad}")
    return Options(args.mode or "quick", backends, dtypes, args.seed)


def main(argv=None, impl: Drivers = LIBRARY) -> int:
    args = parser().parse_args(argv)
    try:
        opt = parse_options(args)
    except ValueError as e:
        print(f"audit: {e}", file=sys.stderr)
        return 2
    res = run_audit(opt, impl)
    if args.failures_only:
        shown = res._replace(rows=[r for r in res.rows if not r.ok])
        print(to_text(shown).rsplit("\n", 1)[0])
        print(res.summary())
    else:
        print(to_text(res))
    if args.report:
        for t in write_report(res, args.report):
            print(f"wrote {t}")
    return 0 if res.ok else 1
