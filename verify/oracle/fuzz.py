"""Live fuzzing of a candidate layer: Hypothesis draws layer cases, the checker judges, and a
failure is shrunk to a minimal case, written as a layer case file with a one-command reproduction.

The calling protocol (the sequence form, NumPy arrays in, arrays out):

    candidate(params, x, reset, c_0, g_c) -> {"c": ..., "grad_W_z": ..., ...}

    params   dict of W_z, W_f (H, I) and w_z, w_f, b_z, b_f (H,)
    x        (T, B, I)      reset (T, B) bool      c_0 (B, H)      g_c (T, B, H)
    returns  c (T, B, H) and the six grad_* (parameter shapes), the gradients of
             sum_t sum_b <g_c[t, b], c_t[b]> through the recurrence; optionally trace_* at every
             step (T, B, H[, I]), final_trace_*, grad_x (T, B, I), grad_c_0 (B, H)

Inputs are float64 or float32 (the candidate computes in the dtype it is given); arrays are
copies, so a candidate may modify them. `verify.adapters.numpy_layer.layer` is a complete example.

The step form (`from_step`, CLI `fuzz --step`) wraps a function of one step,

    step(params, x_t, reset_t, c_tm1, traces_tm1) -> (c_t, traces_t)

x_t (B, I), reset_t (B,) bool, c_tm1 (B, H), traces: dict of the six fields (B, H[, I]), into the
sequence form: it starts from c_0 and zero traces, and sums the gradient
sum_t sum_b g_c[t, b] * traces_t[b] with the NumPy reference (rtrl_ref.traces.grads_from_traces).
The step function applies the resets itself (the cell and the traces of rows with reset_t).

What is drawn (verify.oracle.fuzz.layer_draws): T in 1..8, B in 1..3, I in 1..3, H in 1..3, the
dtype, the gate regime (normal, saturated, f near 1, f near 0), a reset per step and row, and a
seed for the values (verify.problem.make_problem, g_c from its own stream of the seed). Hypothesis
shrinks a failure towards fewer steps, rows, inputs and cells, float64, the normal regime and no
resets. The reference and the judgement are those of a layer case (check_candidate).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.traces import Traces, grads_from_traces
from verify.oracle.case import Case
from verify.oracle.check import CheckReport, check_candidate
from verify.oracle.io import MalformedInput
from verify.oracle.make import draw_g_c, layer_case_from_arrays, write_case
from verify.problem import REGIMES, make_problem

MAX_SIZES = {"T": 8, "B": 3, "I": 3, "H": 3}
DTYPES = ("float64", "float32")


class Draw(NamedTuple):
    """One drawn layer case, before its arrays are made."""

    T: int
    B: int
    I: int
    H: int
    dtype: str
    regime: str
    seed: int
    reset: tuple            # T * B booleans, row-major (step, row)

    def describe(self) -> str:
        steps = [t for t in range(self.T) if any(self.reset[t * self.B:(t + 1) * self.B])]
        return (f"T={self.T} B={self.B} I={self.I} H={self.H} {self.dtype} {self.regime} "
                f"seed={self.seed} resets at steps {steps}")


def layer_draws():
    """The Hypothesis strategy of `Draw`s."""
    from hypothesis import strategies as st

    @st.composite
    def draws(draw):
        sizes = {k: draw(st.integers(1, n), label=k) for k, n in MAX_SIZES.items()}
        dtype = draw(st.sampled_from(DTYPES), label="dtype")
        regime = draw(st.sampled_from(REGIMES), label="regime")
        seed = draw(st.integers(0, 2**16), label="seed")
        n = sizes["T"] * sizes["B"]
        reset = draw(st.lists(st.booleans(), min_size=n, max_size=n), label="reset")
        return Draw(sizes["T"], sizes["B"], sizes["I"], sizes["H"], dtype, regime, seed, tuple(reset))

    return draws()


def draw_case(d: Draw, name: str = "fuzz") -> Case:
    """The layer case of a draw: inputs in its dtype, references computed in float64."""
    reset = np.array(d.reset, bool).reshape(d.T, d.B)                 # (T, B)
    prob = make_problem(d.seed, d.T, d.B, d.I, d.H, 2, np.float64, d.regime, reset)
    dtype = np.dtype(d.dtype)
    g_c = draw_g_c(d.seed, d.T, d.B, d.H).astype(dtype)              # (T, B, H)
    generator = {"drawn_by": "python -m verify.oracle fuzz", "seed": d.seed, "regime": d.regime,
                 "draw": d.describe()}
    return layer_case_from_arrays(name, prob.p.astype(dtype), prob.x.astype(dtype), reset,
                                  prob.c_0.astype(dtype), g_c, None, f"fuzz: {d.describe()}", generator)


def call_candidate(fn: Callable, case: Case) -> dict:
    """Run a protocol candidate on a layer case's inputs (copies); its outputs as a dict."""
    a = case.arrays
    params = {f: a[f].copy() for f in ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")}
    out = fn(params, a["x"].copy(), a["reset"].copy(), a["c_0"].copy(), a["g_c"].copy())
    if not isinstance(out, Mapping):
        raise MalformedInput(f"candidate: expected a mapping of array names to arrays, "
                             f"got {type(out).__name__}")
    return dict(out)


def run_on_case(fn: Callable, case: Case) -> tuple[CheckReport | None, str]:
    """(report, "") when the candidate's outputs could be checked, else (None, why not)."""
    try:
        out = call_candidate(fn, case)
    except Exception as e:  # the candidate's own failure is a finding, not a crash of ours
        return None, f"candidate raised {type(e).__name__}: {e}"
    try:
        return check_candidate(case, out), ""
    except MalformedInput as e:
        return None, f"malformed output: {e}"


def from_step(step: Callable) -> Callable:
    """The sequence form of a step-form candidate (see the module docstring)."""
    fields = ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")

    def sequence(params, x, reset, c_0, g_c):
        T, B, I = x.shape
        H = params["W_z"].shape[0]
        traces = {f: np.zeros((B, H, I) if f in ("W_z", "W_f") else (B, H), x.dtype) for f in fields}
        grads = [np.zeros(params[f].shape, x.dtype) for f in fields]  # ELSTMParams order
        c_t, cs, every = c_0, [], {f: [] for f in fields}
        for t in range(T):
            c_t, traces = step(params, x[t], reset[t], c_t, traces)
            traces = {f: np.asarray(traces[f]) for f in fields}
            step_grads = grads_from_traces(g_c[t], Traces(**traces))
            grads = [a + b for a, b in zip(grads, step_grads)]
            cs.append(np.asarray(c_t))
            for f in fields:
                every[f].append(traces[f])
        out = {"c": np.stack(cs)}                                     # (T, B, H)
        out.update({f"trace_{f}": np.stack(every[f]) for f in fields})    # (T, B, H[, I])
        out.update({f"final_trace_{f}": traces[f] for f in fields})
        out.update({f"grad_{f}": g for f, g in zip(fields, grads)})
        return out

    sequence.__name__ = f"from_step({getattr(step, '__name__', 'step')})"
    return sequence


class FuzzResult(NamedTuple):
    ok: bool
    examples: int               # candidate calls, shrinking included
    case: Case | None           # the minimal failing case
    report: CheckReport | None  # its report (None when the candidate raised or was malformed)
    error: str                  # why there is no report
    path: Path | None           # where the case was written
    command: str                # the one-command reproduction

    def to_text(self) -> str:
        if self.ok:
            return f"PASS: no failing case in {self.examples} drawn layer cases"
        lines = [f"FAIL: a failing case was found and shrunk ({self.examples} candidate calls): "
                 f"{self.case.meta['description'].removeprefix('fuzz: ')}"]
        lines.append(self.report.to_text() if self.report is not None else self.error)
        if self.path is not None:
            lines.append(f"minimal case written to {self.path}.json/.npz")
        if self.command:
            lines.append(f"reproduce: {self.command}")
        return "\n".join(lines)


class _Found(Exception):
    """Raised inside the Hypothesis property when the candidate fails."""


def fuzz(fn: Callable, max_examples: int = 200, seed: int = 0, out_dir=None, name: str = "fuzz",
         target: str = "", step_form: bool = False) -> FuzzResult:
    """Search for a layer case on which `fn` fails; shrink it; write it to out_dir (if given).

    Deterministic for a given seed. target: the MODULE:CALLABLE text for the reproduction command;
    step_form: fn is of the step form (wrapped with `from_step`).
    """
    fn = from_step(fn) if step_form else fn
    try:
        from hypothesis import HealthCheck, Phase, Verbosity, given, settings
        from hypothesis import seed as hypothesis_seed
    except ImportError:
        raise ValueError("fuzz: needs the hypothesis package (pip install 'rtrl_ref[oracle]' or "
                         "pip install hypothesis)") from None

    if not callable(fn):
        raise ValueError(f"candidate: expected a callable, got {type(fn).__name__}")
    if not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples: expected an integer >= 1, got {max_examples!r}")
    state = {"calls": 0, "last": None}

    @hypothesis_seed(seed)
    @settings(max_examples=max_examples, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              phases=(Phase.generate, Phase.shrink), verbosity=Verbosity.quiet, print_blob=False)
    @given(layer_draws())
    def prop(d: Draw):
        state["calls"] += 1
        case = draw_case(d, name)
        report, error = run_on_case(fn, case)
        if report is None or not report.ok:
            state["last"] = (case, report, error)
            raise _Found(error or report.summary())

    try:
        prop()
    except _Found:
        pass
    except Exception:
        if state["last"] is None:
            raise
    if state["last"] is None:
        return FuzzResult(True, state["calls"], None, None, "", None, "")
    case, report, error = state["last"]                               # the shrunk one: replayed last
    path = None
    if out_dir is not None:
        js, _ = write_case(case, out_dir)
        path = js.with_suffix("")
    command = ""
    if path is not None:
        command = f"python -m verify.oracle fuzz {target or 'MODULE:CALLABLE'} --case {path}"
        if step_form:
            command += " --step"
    return FuzzResult(False, state["calls"], case, report, error, path, command)


def load_target(target: str) -> Callable:
    """The callable named by MODULE:CALLABLE (CALLABLE may be dotted); ValueError with the reason."""
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise ValueError(f"target: expected MODULE:CALLABLE (e.g. verify.adapters.numpy_layer:layer), "
                         f"got {target!r}")
    module_name, attr = target.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"target {target}: cannot import module {module_name!r} ({e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"target {target}: expected a callable {attr!r} in {module_name}, "
                             f"found no {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"target {target}: expected a callable, got {type(obj).__name__}")
    return obj


def case_name(target: str) -> str:
    """A file name for the minimal case of `target`."""
    return "fuzz-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-")
