"""Generating oracle cases: inputs from a seed, reference outputs from the NumPy reference.

The reference of every case is computed in float64 (float32 inputs are exactly representable in
float64) and rounded to the case dtype, so a float32 case carries no float32 round-off of ours:

    forward     c, h, loss           rtrl_ref.elstm_forward, out_gate, verify.problem.readout_loss
    immediate   g_c                  verify.problem.bptt_grads (readout -> immediate_g_c)
    traces      trace_*, final_*     the step form: reset_state then trace_step, every step
    gradients   grad_*               full BPTT (verify.problem.bptt_grads); the RTRL gradient
                                     sum_t sum_b g_c * trace must agree, or no case is written

Layer cases (schema version 2, `kind="layer"`) hold the recurrent layer alone: the immediate
gradients g_c are drawn (an input), and the outputs are

    forward     c                    rtrl_ref.elstm_forward
    traces      trace_*, final_*     the step form (`traces_at`)
    gradients   grad_*               rtrl_ref.bptt of sum_t <g_c[t], c_t>; the RTRL gradient
                                     must agree, or no case is written

Cell cases (schema version 3, `kind="cell"`) hold one cell of rtrl_ref.cells (IndRNN, minGRU, LRU)
alone, as a layer case: the immediate gradients g_s are drawn (an input), and the outputs are

    forward     s                    rtrl_ref.cells.forward
    traces      trace_*, final_*     the step form (rtrl_ref.cells.rtrl_step), every step
    gradients   grad_*, grad_s_0     rtrl_ref.cells.bptt of sum_t <g_s[t], s_t>; the RTRL gradient
                                     must agree, or no case is written

with complex arrays (the LRU) split into NAME_re and NAME_im (verify.oracle.cell_case holds this
reference; `make_cell_case` draws the inputs and builds the case).

Generation is deterministic: the same arguments give byte-identical arrays (and files).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.bptt import bptt
from rtrl_ref.cell import cache_at
from rtrl_ref.out_gate import out_gate
from rtrl_ref.params import ELSTMParams
from rtrl_ref.traces import Traces, grads_from_traces, reset_state, trace_step, zero_traces
from rtrl_ref.unroll import elstm_forward
from verify.cell_checks import CELL_NAMES, CELL_REGIMES, CELL_RESETS, make_cell_problem
from verify.compare import rel_error
from verify.oracle import schema
from verify.oracle.case import Case
from verify.oracle.cell_case import cell_outputs, draw_g_s, split_complex
from verify.oracle.io import write_json, write_npz
from verify.problem import REGIMES, RESET_PATTERNS, Problem, bptt_grads, make_problem

RESETS = RESET_PATTERNS + ("sparse",)
DENSE_TRACE_MAX_T = 64       # up to this T every step's traces are stored


class CaseSpec(NamedTuple):
    """Everything that determines a case (the arguments of `make`)."""

    name: str
    T: int
    B: int
    I: int
    H: int
    K: int = 3
    dtype: str = "float64"
    seed: int = 0
    regime: str = "normal"
    resets: str = "random"
    trace_steps: str = "auto"      # all | sparse | auto (all when T <= 64)
    description: str = ""
    kind: str = "model"            # model (schema version 1) | layer (2) | cell (3)
    cell: str = ""                 # cell cases: indrnn | mingru | lru

    def command(self) -> str:
        if self.kind == "cell":
            return (f"python -m verify.oracle make --kind cell --cell {self.cell} --name {self.name} "
                    f"--T {self.T} --B {self.B} --I {self.I} --H {self.H} --dtype {self.dtype} "
                    f"--seed {self.seed} --regime {self.regime} --resets {self.resets} "
                    f"--trace-steps {self.trace_steps}")
        if self.kind == "layer":
            return (f"python -m verify.oracle make --kind layer --name {self.name} --T {self.T} "
                    f"--B {self.B} --I {self.I} --H {self.H} --dtype {self.dtype} --seed {self.seed} "
                    f"--regime {self.regime} --resets {self.resets} --trace-steps {self.trace_steps}")
        return (f"python -m verify.oracle make --name {self.name} --T {self.T} --B {self.B} "
                f"--I {self.I} --H {self.H} --K {self.K} --dtype {self.dtype} --seed {self.seed} "
                f"--regime {self.regime} --resets {self.resets} --trace-steps {self.trace_steps}")


GOLDEN = (
    CaseSpec("basic-f64", 16, 3, 4, 5, seed=11, resets="random",
             description="ordinary gates, random resets (p=0.2 per step and row)"),
    CaseSpec("basic-f32", 16, 3, 4, 5, dtype="float32", seed=12, resets="random",
             description="ordinary gates, random resets, float32"),
    CaseSpec("saturated-f64", 24, 2, 3, 4, seed=13, regime="saturated", resets="middle",
             description="saturated gates (weights ~ N(0, 3^2)), every row reset at T/2"),
    CaseSpec("saturated-f32", 24, 2, 3, 4, dtype="float32", seed=14, regime="saturated",
             resets="middle", description="saturated gates, every row reset at T/2, float32"),
    CaseSpec("long-f64", 1000, 1, 2, 3, seed=15, regime="forget_open", resets="sparse",
             description="T=1000 with f near 1 (long memory), resets at 2T/5 and 3T/4; "
                         "traces at stated steps"),
    CaseSpec("long-f32", 1000, 1, 2, 3, dtype="float32", seed=16, regime="forget_open",
             resets="sparse", description="as long-f64 in float32"),
)

# Layer-level golden cases (schema version 2): the same regimes as GOLDEN, the layer alone.
LAYER_GOLDEN = (
    CaseSpec("layer-basic-f64", 16, 3, 4, 5, seed=21, resets="random", kind="layer",
             description="layer only: ordinary gates, random resets (p=0.2 per step and row)"),
    CaseSpec("layer-basic-f32", 16, 3, 4, 5, dtype="float32", seed=22, resets="random", kind="layer",
             description="layer only: ordinary gates, random resets, float32"),
    CaseSpec("layer-saturated-f64", 24, 2, 3, 4, seed=23, regime="saturated", resets="middle",
             kind="layer", description="layer only: saturated gates, every row reset at T/2"),
    CaseSpec("layer-saturated-f32", 24, 2, 3, 4, dtype="float32", seed=24, regime="saturated",
             resets="middle", kind="layer",
             description="layer only: saturated gates, every row reset at T/2, float32"),
    CaseSpec("layer-long-f64", 1000, 1, 2, 3, seed=25, regime="forget_open", resets="sparse",
             kind="layer", description="layer only: T=1000 with f near 1, resets at 2T/5 and 3T/4; "
                                       "traces at stated steps"),
    CaseSpec("layer-long-f32", 1000, 1, 2, 3, dtype="float32", seed=26, regime="forget_open",
             resets="sparse", kind="layer", description="as layer-long-f64 in float32"),
)


def _cell_golden() -> tuple[CaseSpec, ...]:
    """Per cell: basic (ordinary values, resets per row; float64 and float32), saturated (IndRNN and
    minGRU: tanh and sigmoid saturated; the LRU is linear) and long (T=48, J_t near 1)."""
    specs = []
    for k, cell in enumerate(CELL_NAMES):
        regimes = [("basic", 6, 3, 2, 2, "normal", "rows", "all", ("float64", "float32"),
                    "ordinary values, row 0 reset at T/2, row 1 at random steps, row 2 never"),
                   ("long", 48, 1, 2, 2, "slow", "rows", "sparse", ("float64",),
                    "T=48 with J_t near 1 (long memory), a reset at T/2; traces at "
                    "stated steps")]
        if cell != "lru":
            regimes.insert(1, ("saturated", 8, 2, 2, 2, "saturated", "random", "all", ("float64",),
                               "saturated activations (values ~ N(0, 2.5^2)), random resets per row"))
        for j, (label, T, B, I, H, regime, resets, steps, dtypes, text) in enumerate(regimes):
            for d, dtype in enumerate(dtypes):
                specs.append(CaseSpec(f"cell-{cell}-{label}-f{dtype[-2:]}", T, B, I, H, dtype=dtype,
                                      seed=100 + 10 * k + 2 * j + d, regime=regime, resets=resets,
                                      trace_steps=steps, kind="cell", cell=cell,
                                      description=f"{cell}: {text}" + (", float32" if d else "")))
    return tuple(specs)


# Cell golden cases (schema version 3): each cell of rtrl_ref.cells alone.
CELL_GOLDEN = _cell_golden()
KINDS = ("model", "layer", "cell")


def check_spec(spec: CaseSpec) -> CaseSpec:
    for k in ("T", "B", "I", "H", "K"):
        v = getattr(spec, k)
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{k}: expected an integer >= 1, got {v!r}")
    if spec.K < 2:
        raise ValueError(f"K: expected at least 2 readout classes, got {spec.K}")
    if spec.dtype not in schema.DEFAULT_TOLERANCE:
        raise ValueError(f"dtype: expected one of {sorted(schema.DEFAULT_TOLERANCE)}, got {spec.dtype!r}")
    if spec.kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {spec.kind!r}")
    regimes, resets = (CELL_REGIMES, CELL_RESETS) if spec.kind == "cell" else (REGIMES, RESETS)
    if spec.regime not in regimes:
        raise ValueError(f"regime: expected one of {regimes}, got {spec.regime!r}")
    if spec.resets not in resets:
        raise ValueError(f"resets: expected one of {resets}, got {spec.resets!r}")
    if (spec.kind == "cell") != bool(spec.cell) or (spec.cell and spec.cell not in CELL_NAMES):
        raise ValueError(f"cell: expected one of {CELL_NAMES} for a cell case (--kind cell) and none "
                         f"otherwise, got {spec.cell!r} for kind {spec.kind!r}")
    if spec.trace_steps not in ("all", "sparse", "auto"):
        raise ValueError(f"trace_steps: expected all, sparse or auto, got {spec.trace_steps!r}")
    if not spec.name or any(ch in spec.name for ch in "/\\ ") or spec.name.startswith("."):
        raise ValueError(f"name: expected a plain file name, got {spec.name!r}")
    return spec


def sparse_resets(T: int, B: int) -> np.ndarray:
    """(T, B) resets at 2T/5 and 3T/4 in row 0 only (long cases keep long episodes)."""
    reset = np.zeros((T, B), bool)                                    # (T, B)
    if T >= 4:
        reset[(2 * T) // 5, 0] = True
        reset[(3 * T) // 4, 0] = True
    return reset


def select_trace_steps(T: int, reset: np.ndarray, mode: str) -> np.ndarray:
    """(N,) stored trace steps: all, or the first three, around each reset, tenths, and the last."""
    if mode == "all" or (mode == "auto" and T <= DENSE_TRACE_MAX_T):
        return np.arange(T, dtype=np.int64)                           # (N,)
    steps = {0, 1, 2, T - 1} | {k * T // 10 - 1 for k in range(1, 11)}
    for t in np.flatnonzero(reset.any(1)):
        steps |= {t - 1, t, t + 1}
    return np.array(sorted(s for s in steps if 0 <= s < T), dtype=np.int64)   # (N,)


def cast_problem(prob: Problem, dtype) -> Problem:
    return Problem(prob.p.astype(dtype), prob.q.astype(dtype), prob.V.astype(dtype),
                   prob.x.astype(dtype), prob.reset, prob.c_0.astype(dtype),
                   prob.y.astype(np.int64))


def compute_outputs(prob: Problem, trace_steps: np.ndarray) -> dict:
    """Every reference output of the schema, in the problem's dtype (the NumPy reference)."""
    back = bptt_grads(prob)
    traj, g_c = back.traj, back.g_c
    T, B, _ = prob.x.shape
    H, I = prob.p.W_z.shape
    dtype = prob.x.dtype
    h, _ = out_gate(prob.q, prob.x, traj.c_t)                         # (T, B, H)
    traces = zero_traces(B, H, I, dtype)
    stored = {f: [] for f in schema.ELSTM_FIELDS}
    rtrl = [np.zeros_like(a) for a in prob.p]                         # ELSTMParams fields
    keep = set(int(s) for s in trace_steps)
    for t in range(T):
        traces = trace_step(reset_state(traces, prob.reset[t]), cache_at(traj, t))
        rtrl = [a + b for a, b in zip(rtrl, grads_from_traces(g_c[t], traces))]
        if t in keep:
            for f in schema.ELSTM_FIELDS:
                stored[f].append(getattr(traces, f))
    worst = max(rel_error(a, b) for a, b in zip(rtrl, back.grads.p))
    if worst > (1e-9 if dtype == np.float64 else 1e-3):
        raise RuntimeError(f"oracle: the reference RTRL and BPTT gradients disagree "
                           f"(rel {worst:.2e}); refusing to write a case")
    out = {"c": traj.c_t, "h": h, "loss": np.array(back.loss, dtype), "g_c": g_c}
    for f in schema.ELSTM_FIELDS:
        out[f"trace_{f}"] = np.stack(stored[f])                       # (N, B, H[, I])
    for f in schema.ELSTM_FIELDS:
        out[f"final_trace_{f}"] = getattr(traces, f)                  # (B, H[, I])
    g = back.grads
    for f in schema.ELSTM_FIELDS:
        out[f"grad_{f}"] = getattr(g.p, f)
    out.update(grad_W_o=g.q.W_o, grad_b_o=g.q.b_o, grad_V=g.V, grad_x=g.x, grad_c_0=g.c_0)
    return {n: np.asarray(out[n], dtype, order="C") for n in schema.OUTPUTS}


def traces_at(p: ELSTMParams, x, reset, c_0, steps) -> tuple[dict, dict]:
    """The RTRL traces of the NumPy reference at the given steps, in the inputs' dtype.

    Returns ({"trace_W_z": (M, B, H, I), ...}, {"final_trace_W_z": (B, H, I), ...}) for the M
    steps `steps` (increasing, in [0, T)): the step form, reset_state then trace_step, each step.
    """
    _, traj = elstm_forward(p, x, reset, c_0)
    T, B, I = x.shape
    H = p.W_z.shape[0]
    traces = zero_traces(B, H, I, x.dtype)
    keep = set(int(s) for s in steps)
    stored = {f: [] for f in schema.ELSTM_FIELDS}
    for t in range(T):
        traces = trace_step(reset_state(traces, reset[t]), cache_at(traj, t))
        if t in keep:
            for f in schema.ELSTM_FIELDS:
                stored[f].append(getattr(traces, f))
    empty = {f: (0, B, H, I) if f in ("W_z", "W_f") else (0, B, H) for f in schema.ELSTM_FIELDS}
    at = {f"trace_{f}": np.stack(v) if v else np.zeros(empty[f], x.dtype) for f, v in stored.items()}
    final = {f"final_trace_{f}": getattr(traces, f) for f in schema.ELSTM_FIELDS}
    return at, final


def layer_outputs(p: ELSTMParams, x, reset, c_0, g_c, trace_steps) -> dict:
    """Every output of a layer case, in the inputs' dtype (the NumPy reference).

    c from elstm_forward; the gradients of sum_t <g_c[t], c_t> by rtrl_ref.bptt; traces by the
    step form at trace_steps. The RTRL gradient sum_t sum_b g_c * trace must agree with BPTT.
    """
    c, traj = elstm_forward(p, x, reset, c_0)                         # (T, B, H)
    back = bptt(p, traj, reset, g_c)
    T = x.shape[0]
    at, final = traces_at(p, x, reset, c_0, np.arange(T))
    rtrl = [np.zeros_like(a) for a in p]                              # ELSTMParams fields
    for t in range(T):
        traces_t = Traces(*(at[f"trace_{f}"][t] for f in schema.ELSTM_FIELDS))
        rtrl = [a + b for a, b in zip(rtrl, grads_from_traces(g_c[t], traces_t))]
    worst = max(rel_error(a, b) for a, b in zip(rtrl, back.grads))
    if worst > (1e-9 if x.dtype == np.float64 else 1e-3):
        raise RuntimeError(f"oracle: the reference RTRL and BPTT gradients disagree "
                           f"(rel {worst:.2e}); refusing to write a case")
    steps = np.asarray(trace_steps, np.int64)
    out = {"c": c}
    out.update({n: a[steps] for n, a in at.items()})
    out.update(final)
    out.update({f"grad_{f}": getattr(back.grads, f) for f in schema.ELSTM_FIELDS})
    out.update(grad_x=back.g_x, grad_c_0=back.g_c0)
    return {n: np.asarray(out[n], x.dtype, order="C") for n in schema.LAYER.outputs}


def draw_g_c(seed: int, T: int, B: int, H: int) -> np.ndarray:
    """(T, B, H) immediate gradients of a layer case, N(0, 1), from their own stream of `seed`."""
    return np.random.default_rng([seed, 2]).standard_normal((T, B, H))   # (T, B, H)


def layer_case_from_arrays(name: str, p: ELSTMParams, x, reset, c_0, g_c, trace_steps=None,
                           description: str = "", generator: dict | None = None) -> Case:
    """A layer case from given inputs (in their dtype); references in float64, rounded."""
    dtype = np.dtype(x.dtype)
    if dtype.name not in schema.LAYER_TOLERANCE:
        raise ValueError(f"x: expected dtype float32 or float64, got {dtype}")
    T, B, I = x.shape
    H = p.W_z.shape[0]
    reset = np.asarray(reset, bool)
    trace_steps = np.arange(T, dtype=np.int64) if trace_steps is None else np.asarray(trace_steps, np.int64)
    f64 = np.float64
    outputs = layer_outputs(p.astype(f64), x.astype(f64), reset, c_0.astype(f64), g_c.astype(f64),
                            trace_steps)
    arrays = {f: getattr(p, f) for f in schema.ELSTM_FIELDS}
    arrays.update(x=x, reset=reset, c_0=c_0, g_c=g_c, trace_steps=trace_steps)
    arrays = {n: np.asarray(arrays[n], order="C") for n in schema.LAYER.inputs}
    arrays.update({n: outputs[n].astype(dtype) for n in schema.LAYER.outputs})
    sizes = dict(T=T, B=B, I=I, H=H, N=int(trace_steps.size))
    meta = {
        "schema": schema.SCHEMA,
        "schema_version": schema.LAYER_SCHEMA_VERSION,
        "kind": "layer",
        "name": name,
        "description": description,
        "dtype": dtype.name,
        "sizes": sizes,
        "generator": dict(generator or {}, reference="computed in float64, rounded to the case dtype"),
        "contract": "the recurrent layer alone: given the parameters, x, reset, c_0 and the "
                    "immediate gradients g_c, give c, the six eLSTM gradients and optionally traces",
        "conventions": schema.LAYER_CONVENTIONS,
        "tolerance": schema.LAYER_TOLERANCE[dtype.name],
        "arrays": {n: schema.array_entry(n, a, schema.LAYER) for n, a in arrays.items()},
    }
    return Case(meta, arrays)


def make_layer_case(spec: CaseSpec) -> Case:
    """A layer case: inputs from spec.seed (as make_case) plus drawn immediate gradients g_c."""
    dtype = np.dtype(spec.dtype)
    resets = sparse_resets(spec.T, spec.B) if spec.resets == "sparse" else spec.resets
    drawn = make_problem(spec.seed, spec.T, spec.B, spec.I, spec.H, 2, np.float64, spec.regime, resets)
    g_c = draw_g_c(spec.seed, spec.T, spec.B, spec.H).astype(dtype)  # (T, B, H)
    trace_steps = select_trace_steps(spec.T, drawn.reset, spec.trace_steps)   # (N,)
    generator = {"seed": spec.seed, "regime": spec.regime, "resets": spec.resets,
                 "trace_steps": spec.trace_steps, "command": spec.command()}
    return layer_case_from_arrays(spec.name, drawn.p.astype(dtype), drawn.x.astype(dtype), drawn.reset,
                                  drawn.c_0.astype(dtype), g_c, trace_steps, spec.description, generator)


# --------------------------------------------------------------------------------------------
# cell cases (schema version 3): the reference in verify.oracle.cell_case


def make_cell_case(spec: CaseSpec) -> Case:
    """A cell case: inputs from spec.seed (verify.cell_checks.make_cell_problem) plus drawn g_s;
    references computed in float64 from the case-dtype inputs, rounded to the case dtype."""
    dtype = np.dtype(spec.dtype)
    kind = schema.CELL_KINDS[spec.cell]
    prob = make_cell_problem(spec.cell, spec.seed, spec.T, spec.B, spec.I, spec.H, dtype, spec.regime,
                             spec.resets)
    cell, p = prob.cell, prob.p
    state = prob.s_0.dtype
    g_s = draw_g_s(spec.seed, spec.T, spec.B, spec.H, np.iscomplexobj(prob.s_0)).astype(state)
    trace_steps = select_trace_steps(spec.T, prob.reset, spec.trace_steps)   # (N,)
    p64 = type(p)(*(a.astype(np.float64) for a in p))
    s_0_64 = prob.s_0.astype(cell.zero_state(p64, 1).dtype)
    outputs = cell_outputs(cell, p64, prob.x.astype(np.float64), prob.reset, s_0_64,
                           g_s.astype(s_0_64.dtype), trace_steps)
    arrays = dict(zip(p._fields, p))
    arrays.update(x=prob.x, reset=prob.reset, trace_steps=trace_steps)
    arrays.update(split_complex("s_0", prob.s_0))
    arrays.update(split_complex("g_s", g_s))
    arrays = {n: np.asarray(arrays[n], order="C") for n in kind.inputs}
    arrays.update({n: outputs[n].astype(dtype) for n in kind.outputs})
    meta = {
        "schema": schema.SCHEMA,
        "schema_version": schema.CELL_SCHEMA_VERSION,
        "kind": "cell",
        "cell": spec.cell,
        "name": spec.name,
        "description": spec.description,
        "dtype": dtype.name,
        "sizes": dict(T=spec.T, B=spec.B, I=spec.I, H=spec.H, N=int(trace_steps.size)),
        "generator": {"seed": spec.seed, "regime": spec.regime, "resets": spec.resets,
                      "trace_steps": spec.trace_steps, "command": spec.command(),
                      "reference": "computed in float64, rounded to the case dtype"},
        "contract": f"the {spec.cell} cell alone: given the parameters, x, reset, s_0 and the immediate "
                    f"gradients g_s, give s, the gradient of every parameter and optionally traces",
        "conventions": kind.conventions,
        "tolerance": kind.tolerance[dtype.name],
        "arrays": {n: schema.array_entry(n, a, kind) for n, a in arrays.items()},
    }
    return Case(meta, arrays)


def make_case(spec: CaseSpec) -> Case:
    """Inputs from spec.seed, reference outputs computed in float64, arrays in spec.dtype."""
    spec = check_spec(spec)
    if spec.kind == "layer":
        return make_layer_case(spec)
    if spec.kind == "cell":
        return make_cell_case(spec)
    dtype = np.dtype(spec.dtype)
    resets = sparse_resets(spec.T, spec.B) if spec.resets == "sparse" else spec.resets
    drawn = make_problem(spec.seed, spec.T, spec.B, spec.I, spec.H, spec.K, np.float64,
                         spec.regime, resets)
    prob = cast_problem(drawn, dtype)
    trace_steps = select_trace_steps(spec.T, prob.reset, spec.trace_steps)   # (N,)
    outputs = compute_outputs(cast_problem(prob, np.float64), trace_steps)
    arrays = {f: getattr(prob.p, f) for f in schema.ELSTM_FIELDS}
    arrays.update(W_o=prob.q.W_o, b_o=prob.q.b_o, V=prob.V, x=prob.x, reset=prob.reset,
                  c_0=prob.c_0, y=prob.y, trace_steps=trace_steps)
    arrays = {n: np.asarray(arrays[n], order="C") for n in schema.INPUTS}
    arrays.update({n: outputs[n].astype(dtype) for n in schema.OUTPUTS})
    sizes = dict(T=spec.T, B=spec.B, I=spec.I, H=spec.H, K=spec.K, N=int(trace_steps.size))
    meta = {
        "schema": schema.SCHEMA,
        "schema_version": schema.SCHEMA_VERSION,
        "name": spec.name,
        "description": spec.description,
        "dtype": spec.dtype,
        "sizes": sizes,
        "generator": {"seed": spec.seed, "regime": spec.regime, "resets": spec.resets,
                      "trace_steps": spec.trace_steps, "command": spec.command(),
                      "reference": "computed in float64, rounded to the case dtype"},
        "loss": schema.LOSS,
        "conventions": schema.CONVENTIONS,
        "tolerance": schema.DEFAULT_TOLERANCE[spec.dtype],
        "arrays": {n: schema.array_entry(n, a) for n, a in arrays.items()},
    }
    return Case(meta, arrays)


def write_case(case: Case, out_dir) -> tuple[Path, Path]:
    """Write NAME.npz and NAME.json into out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz = write_npz(out / f"{case.name}.npz", {n: case.arrays[n] for n in case.kind.by_name})
    js = write_json(out / f"{case.name}.json", case.meta)
    return js, npz
