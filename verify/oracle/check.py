"""Checking a candidate implementation against an oracle case (a model or a layer case).

For every tensor the candidate provides (the required ones must be there):

    max abs   max |a - b|
    rel       max |a - b| / max |b|          (norm-wise, as verify.compare.rel_error)
    cosine    <a, b> / (|a| |b|)
    verdict   rel <= the case's tolerance for the tensor's group, and every value finite

and, for per-step tensors (leading axis T, or trace steps), the first time step and element where
|a - b| > tol * max|b|, with both values: a tensor fails exactly when such an element exists. A
zero reference (possible only in hand-made cases) is compared absolutely.

Traces are compared at the steps the candidate gives them: the case's stored steps (leading axis
N), every step (leading axis T) or the steps it names in an int array `trace_steps` (leading axis
M). At steps the case does not store, the reference is recomputed from the case's inputs with the
NumPy reference (verify.oracle.make.traces_at; cell_traces_at for a cell case), so nothing is cut
down. The report says which steps were compared and, when the first failing step follows steps
that were not compared, names the last passing one.

Candidate names are strict: a name outside the kind's outputs (and `trace_steps`) is malformed
input, with the closest schema name suggested; lenient=True lists such names as ignored instead.
Failing tensors get diagnoses (verify.oracle.diagnose): a shared scale factor, a flipped sign, a
transpose, swapped fields, a shift by one time step.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from verify.oracle import schema
from verify.oracle.case import Case, load_case
from verify.oracle.diagnose import Diagnosis, Pair, diagnose
from verify.oracle.io import MalformedInput, read_npz

EXIT_OK, EXIT_MISMATCH, EXIT_MALFORMED = 0, 1, 2
CANDIDATE_STEPS = "trace_steps"      # optional candidate array: the steps of its trace_* arrays


class Divergence(NamedTuple):
    step: int | None     # time step t (per-step tensors), else None
    index: tuple         # index into the tensor as compared
    labels: tuple        # dimension symbols of the tensor
    candidate: float
    reference: float

    def element(self) -> str:
        pairs = [f"{lab.lower()}={i}" for lab, i in zip(self.labels, self.index) if lab not in ("T", "N")]
        return "[" + ", ".join(pairs) + "]"

    def describe(self) -> str:
        where = f"step t={self.step}, " if self.step is not None else ""
        return (f"{where}element {self.element()}: candidate {self.candidate:.9g}, "
                f"reference {self.reference:.9g}")


class TensorResult(NamedTuple):
    name: str
    group: str
    shape: tuple
    max_abs: float
    rel: float
    cosine: float
    tol: float
    ok: bool
    first: Divergence | None
    note: str = ""
    steps: tuple | None = None     # the time steps compared (per-step tensors), else None


class CheckReport(NamedTuple):
    case: str
    dtype: str
    sizes: dict
    tensors: list
    not_provided: list     # optional outputs the candidate did not provide
    ignored: list          # candidate arrays the schema does not know (lenient mode only)
    kind: str = "model"
    diagnoses: list = []   # verify.oracle.diagnose.Diagnosis, for failing tensors
    coverage: str = ""     # which steps the traces were compared at
    gap: str = ""          # the first failing trace step follows steps that were not compared

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors)

    @property
    def exit_status(self) -> int:
        return EXIT_OK if self.ok else EXIT_MISMATCH

    @property
    def failed(self) -> list:
        return [t for t in self.tensors if not t.ok]

    def first_divergence(self) -> TensorResult | None:
        """The failing tensor that diverges at the earliest time step (schema order on ties);
        failing tensors without a time axis come after all per-step ones."""
        failing = self.failed
        if not failing:
            return None
        order = {n: k for k, n in enumerate(schema.KINDS[self.kind].outputs)}

        def key(t):
            step = t.first.step if t.first is not None else None
            return (step is None, step if step is not None else 0, order[t.name])

        return min(failing, key=key)

    def summary(self) -> str:
        n = len(self.tensors)
        if self.ok:
            return f"PASS: {n} of {n} tensors match case {self.case}"
        head = f"MISMATCH: {len(self.failed)} of {n} tensors differ from case {self.case}"
        first = self.first_divergence()
        if first.first is not None:
            head += f"; first divergence: {first.name} at {first.first.describe()}"
        else:
            head += f"; first failing tensor: {first.name} ({first.note or 'rel ' + format(first.rel, '.2e')})"
        if self.gap:
            head += f"; {self.gap}"
        return head

    def to_text(self) -> str:
        s = self.sizes
        k = f" K={s['K']}" if "K" in s else ""
        lines = [f"case {self.case} ({self.kind}): {self.dtype}, T={s['T']} B={s['B']} I={s['I']} "
                 f"H={s['H']}{k}, {s['N']} stored trace steps",
                 f"{'tensor':<18} {'shape':<16} {'max abs':>10} {'rel':>10} {'cosine':>12} "
                 f"{'tol':>8}  verdict  first divergence"]
        for t in self.tensors:
            first = t.first.describe() if t.first is not None else t.note
            lines.append(f"{t.name:<18} {str(t.shape):<16} {t.max_abs:>10.3e} {t.rel:>10.3e} "
                         f"{t.cosine:>12.9f} {t.tol:>8.1e}  {'ok' if t.ok else 'FAIL':<7}  {first}")
        if self.coverage:
            lines.append(f"traces compared at {self.coverage}")
        if self.not_provided:
            lines.append(f"not provided (optional): {', '.join(self.not_provided)}")
        if self.ignored:
            version = schema.KINDS[self.kind].version
            lines.append(f"ignored (not in schema v{version}, --lenient): {', '.join(self.ignored)}")
        for d in self.diagnoses:
            lines.append(f"diagnosis: {d.message}")
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def tensor(t):
            d = t._asdict()
            d["shape"] = list(t.shape)
            d["steps"] = None if t.steps is None else [int(i) for i in t.steps]
            d["first"] = None if t.first is None else dict(
                step=t.first.step, index=[int(i) for i in t.first.index],
                element=t.first.element(), candidate=t.first.candidate,
                reference=t.first.reference)
            return d
        return {"case": self.case, "kind": self.kind, "dtype": self.dtype, "sizes": self.sizes,
                "ok": self.ok, "summary": self.summary(), "tensors": [tensor(t) for t in self.tensors],
                "not_provided": self.not_provided, "ignored": self.ignored,
                "diagnoses": [d.to_dict() for d in self.diagnoses], "coverage": self.coverage,
                "gap": self.gap}


def _required(case: Case, require) -> tuple:
    kind = case.kind
    if require == "all":
        return kind.outputs
    names = tuple(kind.required) + tuple(require or ())
    unknown = [n for n in names if n not in kind.outputs]
    if unknown:
        raise ValueError(f"require: expected output names of schema v{kind.version} "
                         f"({kind.name} case) {kind.outputs}, got unknown {unknown}")
    return names


def unknown_name_message(case: Case, name: str) -> str:
    """Why `name` is not a candidate array of this case, with the closest schema name."""
    kind = case.kind
    known = kind.outputs + (CANDIDATE_STEPS,)
    where = f"schema v{kind.version} ({kind.name} case)"
    if name in kind.inputs:
        return f"'{name}' is an input of the case, not an output of {where}"
    other = [k for k in schema.KINDS.values() if k is not kind and name in k.outputs]
    if other:
        return (f"'{name}' is an output of {other[0].name} cases, not of {where}"
                + (" (a layer case has no output gate, readout or loss)" if kind is schema.LAYER else ""))
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"expected one of {', '.join(known)}"
    return f"unknown array '{name}' in {where}: {hint}"


def check_names(case: Case, candidate: Mapping, lenient: bool) -> list:
    """The candidate names the kind does not know: an error, or (lenient) a sorted list."""
    known = set(case.kind.outputs) | {CANDIDATE_STEPS}
    unknown = sorted(n for n in candidate if n not in known)
    if unknown and not lenient:
        msgs = "; ".join(unknown_name_message(case, n) for n in unknown)
        raise MalformedInput(f"candidate: {msgs} (--lenient ignores unknown names)")
    return unknown


def candidate_steps(case: Case, candidate: Mapping) -> np.ndarray | None:
    """The candidate's own `trace_steps` (M,), validated; None if it gives none."""
    if CANDIDATE_STEPS not in candidate:
        return None
    T = case.sizes["T"]
    a = np.asarray(candidate[CANDIDATE_STEPS])
    if a.dtype.kind not in "iu" or a.ndim != 1 or a.size < 1:
        raise MalformedInput(f"candidate trace_steps: expected a 1-D integer array of steps, "
                             f"got dtype {a.dtype} and shape {a.shape}")
    if np.any(a < 0) or np.any(a >= T) or np.any(np.diff(a) <= 0):
        raise MalformedInput(f"candidate trace_steps: expected increasing steps in [0, T={T}), "
                             f"got {a.tolist()[:12]}{' ...' if a.size > 12 else ''}")
    return a.astype(np.int64)


def _shape_hint(got: tuple, want: tuple) -> str:
    if len(got) == len(want) and got != want and sorted(got) == sorted(want):
        if len(got) >= 2 and got[:-2] + (got[-1], got[-2]) == want:
            return " (the transpose of the expected shape: store the array untransposed)"
        return " (the expected sizes in another order: are two axes exchanged?)"
    return ""


def conform(case: Case, name: str, value, steps: np.ndarray | None = None):
    """The candidate array `name` as compared, and its time steps (per-step tensors, else None).

    A trace array's leading axis is the candidate's `steps` (M) when it names them, else the
    case's stored steps (N) or every step (T). MalformedInput if the array cannot be compared.
    """
    spec = case.kind.by_name[name]
    try:
        a = np.asarray(value)
    except Exception as e:  # any conversion failure is malformed input
        raise MalformedInput(f"candidate {name}: cannot be read as an array: {e}") from None
    if a.dtype.kind not in "f" or a.dtype.itemsize < 4:
        raise MalformedInput(f"candidate {name}: expected dtype {case.dtype} (or float64), "
                             f"got {a.dtype}")
    if a.dtype.itemsize < case.dtype.itemsize:
        raise MalformedInput(f"candidate {name}: expected dtype {case.dtype} for a {case.dtype} "
                             f"case, got {a.dtype}")
    want = schema.expected_shape(spec, case.sizes)
    T = case.sizes["T"]
    if spec.dims and spec.dims[0] == "N":
        if steps is not None:
            if a.shape == (steps.size,) + want[1:]:
                return a, steps
            label = schema.shape_label(spec, case.sizes)
            raise MalformedInput(f"candidate {name}: expected shape (M={steps.size}, "
                                 f"{label[label.index(',') + 2:]} for the {steps.size} steps of "
                                 f"its trace_steps, got {a.shape}")
        if a.shape == want:
            return a, case.trace_steps
        if a.shape == (T,) + want[1:]:
            return a, np.arange(T, dtype=np.int64)                    # every step given
        raise MalformedInput(f"candidate {name}: expected shape {schema.shape_label(spec, case.sizes)}"
                             f" (or T={T} first){_shape_hint(a.shape, want)}, got {a.shape}")
    if a.shape != want:
        raise MalformedInput(f"candidate {name}: expected shape {schema.shape_label(spec, case.sizes)}"
                             f"{_shape_hint(a.shape, want)}, got {a.shape}")
    per_step = np.arange(T, dtype=np.int64) if spec.dims and spec.dims[0] == "T" else None
    return a, per_step


def compare_tensor(case: Case, name: str, cand: np.ndarray, ref: np.ndarray | None = None,
                   steps: np.ndarray | None = None, atol: float = 0.0) -> TensorResult:
    """One tensor against its reference (the case's stored one unless `ref` is given).

    steps: the time step of each index of the leading axis (per-step tensors). atol: an absolute
    round-off allowance added to tol * max|b| (layer cases, `layer_floors`).
    """
    spec = case.kind.by_name[name]
    tol = float(case.tolerance[spec.group])
    a = cand.astype(np.float64)                                       # (tensor shape)
    b = (case.arrays[name] if ref is None else ref).astype(np.float64)   # (tensor shape)
    if steps is None and spec.per_step:
        steps = case.trace_steps if spec.dims[0] == "N" else np.arange(case.sizes["T"])
    finite = np.isfinite(a)                                           # (tensor shape)
    diff = np.where(finite, np.abs(a - b), np.inf)                    # (tensor shape)
    ref_max = float(np.max(np.abs(b), initial=0.0))
    scale = ref_max if ref_max > 0 else 1.0
    max_abs = float(np.max(diff, initial=0.0))
    rel = max_abs / scale
    norms = float(np.linalg.norm(np.where(finite, a, 0.0))) * float(np.linalg.norm(b))
    if not finite.all():
        cosine = float("nan")
    elif norms > 0:
        cosine = float(np.vdot(a, b) / norms)
    else:
        cosine = 1.0 if max_abs == 0 else 0.0
    bad = diff > tol * scale + atol                                   # (tensor shape)
    first = None
    if bad.any():
        flat = int(np.argmax(bad.reshape(-1)))         # C order: earliest leading index first
        index = np.unravel_index(flat, bad.shape) if bad.ndim else ()
        index = tuple(int(i) for i in index)
        step = int(steps[index[0]]) if steps is not None else None
        first = Divergence(step, index, spec.dims, float(cand[index]), float(b[index]))
    ok = first is None and bool(finite.all())
    note = ""
    if ref_max == 0:
        note = "zero reference: absolute tolerance"
    elif ok and max_abs > tol * scale:
        note = f"within the round-off allowance {atol:.1e}"
    if not finite.all():
        note = "candidate has NaN or Inf"
    kept = None if steps is None else tuple(int(t) for t in steps)
    return TensorResult(name, spec.group, tuple(b.shape), max_abs, rel, cosine, tol, ok, first, note, kept)


class ReferenceTraces:
    """The reference traces of a case at any steps: stored where the case has them, else
    recomputed from the case's inputs (float64, rounded to the case dtype), with zeros at step -1."""

    def __init__(self, case: Case):
        self.case = case
        self._all = None

    def every_step(self) -> dict:
        if self._all is None:
            from verify.oracle.cell_case import cell_inputs, cell_traces_at
            from verify.oracle.make import traces_at

            c = self.case
            f64 = np.float64
            steps = np.arange(c.sizes["T"])
            if c.kind.cell:
                cell, p, x, reset, s_0, _ = cell_inputs(c)
                p = type(p)(*(a.astype(f64) for a in p))
                s_0 = s_0.astype(cell.zero_state(p, 1).dtype)
                at = cell_traces_at(cell, p, x.astype(f64), reset, s_0, steps)
            else:
                at, _ = traces_at(c.params.astype(f64), c.arrays["x"].astype(f64), c.arrays["reset"],
                                  c.arrays["c_0"].astype(f64), steps)
            self._all = {n: a.astype(c.dtype) for n, a in at.items()}
        return self._all

    def at(self, name: str, steps: np.ndarray) -> np.ndarray:
        steps = np.asarray(steps, np.int64)
        stored = self.case.trace_steps
        if np.array_equal(steps, stored):
            return self.case.arrays[name]
        full = self.every_step()[name]                                # (T, B, H[, I])
        out = np.zeros((steps.size,) + full.shape[1:], full.dtype)
        out[steps >= 0] = full[steps[steps >= 0]]
        return out

    def at_f64(self, name: str, steps: np.ndarray) -> np.ndarray:
        return self.at(name, steps).astype(np.float64)


def layer_floors(case: Case) -> dict:
    """{group: absolute round-off allowance} of a layer or cell case: schema.LAYER_FLOOR_ULPS units of
    round-off times the natural size of a trace, max(1, max|x|), and of a gradient, that times the
    largest sum_t sum_b |g_c[t, b, h]| over h (|g_s|, the modulus, for a complex g_s)."""
    ulp = float(np.finfo(case.dtype).eps) * case.kind.floor_ulps
    trace_size = max(1.0, float(np.max(np.abs(case.arrays["x"]), initial=0.0)))
    g_abs = np.sqrt(sum(case.arrays[n].astype(np.float64) ** 2 for n in case.kind.upstream))   # (T, B, H)
    g_size = float(np.max(g_abs.sum((0, 1)), initial=0.0))
    return {"traces": ulp * trace_size, "grads": ulp * trace_size * g_size}


def describe_steps(steps, T: int) -> str:
    steps = sorted(steps)
    if steps == list(range(T)):
        return f"every step t=0..{T - 1}"
    shown = ", ".join(str(t) for t in steps[:12]) + (", ..." if len(steps) > 12 else "")
    return f"{len(steps)} of {T} steps ({shown})"


def coverage_and_gap(case: Case, tensors: list, first: TensorResult | None) -> tuple[str, str]:
    """Which steps the traces were compared at, and the gap before the first failing trace step."""
    traces = [t for t in tensors if t.name.startswith("trace_")]
    if not traces:
        return "", ""
    T = case.sizes["T"]
    compared = sorted(set().union(*(t.steps for t in traces)))
    stored = [int(s) for s in case.trace_steps]
    source = ("the case's stored reference" if all(set(t.steps) <= set(stored) for t in traces)
              else "a reference recomputed from the case inputs")
    coverage = f"{describe_steps(compared, T)}, against {source}"
    gap = ""
    if first is not None and first.name.startswith("trace_") and first.first is not None:
        s = first.first.step
        before = [t for t in compared if t < s]
        last_pass = before[-1] if before else None
        lo = 0 if last_pass is None else last_pass + 1
        if lo < s:
            passing = f"the last passing compared step is t={last_pass}" if last_pass is not None \
                else "no earlier step was compared"
            gap = (f"steps {lo}..{s - 1} were not compared ({passing}): the error may start anywhere "
                   f"in t={lo}..{s}; give traces at every step (leading axis T) to locate it")
    return coverage, gap


def check_candidate(case: Case, candidate: Mapping, require=(), lenient: bool = False) -> CheckReport:
    """Check a mapping name -> array against `case`. MalformedInput if it cannot be checked.

    require: extra output names that must be present (the schema's required set always is),
    or "all". lenient: unknown names are listed as ignored instead of being an error.
    """
    if not isinstance(candidate, Mapping):
        raise MalformedInput(f"candidate: expected a mapping of array names to arrays, "
                             f"got {type(candidate).__name__}")
    kind = case.kind
    ignored = check_names(case, candidate, lenient)
    needed = _required(case, require)
    missing = [n for n in needed if n not in candidate]
    if missing:
        raise MalformedInput(f"candidate: missing required arrays {missing} "
                             f"(required: {list(needed)})")
    steps = candidate_steps(case, candidate)
    refs = ReferenceTraces(case)
    floors = layer_floors(case) if kind.floor_ulps else {}
    tensors, pairs = [], []
    for n in kind.outputs:
        if n not in candidate:
            continue
        spec = kind.by_name[n]
        a, a_steps = conform(case, n, candidate[n], steps)
        ref = refs.at(n, a_steps) if n.startswith("trace_") else None
        res = compare_tensor(case, n, a, ref, a_steps, floors.get(spec.group, 0.0))
        tensors.append(res)
        b = case.arrays[n] if ref is None else ref
        pairs.append(Pair(n, a.astype(np.float64), b.astype(np.float64), res.tol, res.ok, spec.dims,
                          a_steps))
    not_provided = [n for n in kind.outputs if n not in candidate]
    report = CheckReport(case.name, str(case.dtype), case.sizes, tensors, not_provided, ignored, kind.name)
    coverage, gap = coverage_and_gap(case, tensors, report.first_divergence())
    found: list[Diagnosis] = diagnose(pairs, case.sizes, case.arrays["reset"], refs.at_f64) if not report.ok else []
    return report._replace(diagnoses=found, coverage=coverage, gap=gap)


def check_callable(case, fn: Callable[[Case], Mapping], require=(), lenient: bool = False) -> CheckReport:
    """Run fn(case) -> {name: array} on a Case (or a case path) and check what it returns.

    fn reads the inputs from `case.inputs()` (and, for model cases, `case.problem`, a
    verify.problem.Problem: p, q, V, x, reset, c_0, y), and `case.trace_steps` for the steps at
    which traces are stored.
    """
    case = case if isinstance(case, Case) else load_case(case)
    return check_candidate(case, fn(case), require, lenient)


def check_files(case_path, candidate_path, require=(), lenient: bool = False) -> CheckReport:
    """Load a case and a candidate .npz and check them."""
    case = load_case(case_path)
    candidate = read_npz(Path(candidate_path), "candidate")
    return check_candidate(case, candidate, require, lenient)
