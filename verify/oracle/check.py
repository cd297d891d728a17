"""Checking a candidate implementation against an oracle case.

For every tensor the candidate provides (the required ones must be there):

    max abs   max |a - b|
    rel       max |a - b| / max |b|          (norm-wise, as verify.compare.rel_error)
    cosine    <a, b> / (|a| |b|)
    verdict   rel <= the case's tolerance for the tensor's group, and every value finite

and, for per-step tensors (leading axis T, or the stored trace steps), the first time step and
element where |a - b| > tol * max|b|, with both values: a tensor fails exactly when such an
element exists. A zero reference (possible only in hand-made cases) is compared absolutely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from verify.oracle import schema
from verify.oracle.case import Case, load_case
from verify.oracle.io import MalformedInput, read_npz

EXIT_OK, EXIT_MISMATCH, EXIT_MALFORMED = 0, 1, 2


class Divergence(NamedTuple):
    step: int | None     # time step t (per-step tensors), else None
    index: tuple         # index into the tensor as the case stores it
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


class CheckReport(NamedTuple):
    case: str
    dtype: str
    sizes: dict
    tensors: list
    not_provided: list     # optional outputs the candidate did not provide
    ignored: list          # candidate arrays the schema does not know

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
        order = {n: k for k, n in enumerate(schema.OUTPUTS)}

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
        return head

    def to_text(self) -> str:
        s = self.sizes
        lines = [f"case {self.case}: {self.dtype}, T={s['T']} B={s['B']} I={s['I']} H={s['H']} "
                 f"K={s['K']}, {s['N']} stored trace steps",
                 f"{'tensor':<18} {'shape':<16} {'max abs':>10} {'rel':>10} {'cosine':>12} "
                 f"{'tol':>8}  verdict  first divergence"]
        for t in self.tensors:
            first = t.first.describe() if t.first is not None else t.note
            lines.append(f"{t.name:<18} {str(t.shape):<16} {t.max_abs:>10.3e} {t.rel:>10.3e} "
                         f"{t.cosine:>12.9f} {t.tol:>8.1e}  {'ok' if t.ok else 'FAIL':<7}  {first}")
        if self.not_provided:
            lines.append(f"not provided (optional): {', '.join(self.not_provided)}")
        if self.ignored:
            lines.append(f"ignored (not in schema v{schema.SCHEMA_VERSION}): {', '.join(self.ignored)}")
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def tensor(t):
            d = t._asdict()
            d["shape"] = list(t.shape)
            d["first"] = None if t.first is None else dict(
                step=t.first.step, index=[int(i) for i in t.first.index],
                element=t.first.element(), candidate=t.first.candidate,
                reference=t.first.reference)
            return d
        return {"case": self.case, "dtype": self.dtype, "sizes": self.sizes, "ok": self.ok,
                "summary": self.summary(), "tensors": [tensor(t) for t in self.tensors],
                "not_provided": self.not_provided, "ignored": self.ignored}


def _required(case: Case, require) -> tuple:
    if require == "all":
        return schema.OUTPUTS
    names = tuple(schema.REQUIRED) + tuple(require or ())
    unknown = [n for n in names if n not in schema.OUTPUTS]
    if unknown:
        raise ValueError(f"require: expected output names of schema v{schema.SCHEMA_VERSION} "
                         f"{schema.OUTPUTS}, got unknown {unknown}")
    return names


def conform(case: Case, name: str, value) -> np.ndarray:
    """The candidate array `name` as the case stores it; MalformedInput if it cannot be."""
    spec = schema.BY_NAME[name]
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
    if spec.dims and spec.dims[0] == "N" and a.shape == (case.sizes["T"],) + want[1:]:
        return a[case.trace_steps]                                    # every step given
    if a.shape != want:
        extra = " (or T first)" if spec.dims and spec.dims[0] == "N" else ""
        raise MalformedInput(f"candidate {name}: expected shape {schema.shape_label(spec, case.sizes)}"
                             f"{extra}, got {a.shape}")
    return a


def compare_tensor(case: Case, name: str, cand: np.ndarray) -> TensorResult:
    spec = schema.BY_NAME[name]
    tol = float(case.tolerance[spec.group])
    a = cand.astype(np.float64)                                       # (tensor shape)
    b = case.arrays[name].astype(np.float64)                          # (tensor shape)
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
    bad = diff > tol * scale                                          # (tensor shape)
    first = None
    if bad.any():
        flat = int(np.argmax(bad.reshape(-1)))         # C order: earliest leading index first
        index = np.unravel_index(flat, bad.shape) if bad.ndim else ()
        index = tuple(int(i) for i in index)
        step = None
        if spec.per_step:
            step = int(case.trace_steps[index[0]]) if spec.dims[0] == "N" else index[0]
        first = Divergence(step, index, spec.dims, float(cand[index]), float(b[index]))
    ok = first is None and bool(finite.all())
    note = "" if ref_max > 0 else "zero reference: absolute tolerance"
    if not finite.all():
        note = "candidate has NaN or Inf"
    return TensorResult(name, spec.group, tuple(b.shape), max_abs, rel, cosine, tol, ok, first, note)


def check_candidate(case: Case, candidate: Mapping, require=()) -> CheckReport:
    """Check a mapping name -> array against `case`. MalformedInput if it cannot be checked.

    require: extra output names that must be present (the schema's required set always is),
    or "all".
    """
    if not isinstance(candidate, Mapping):
        raise MalformedInput(f"candidate: expected a mapping of array names to arrays, "
                             f"got {type(candidate).__name__}")
    needed = _required(case, require)
    missing = [n for n in needed if n not in candidate]
    if missing:
        raise MalformedInput(f"candidate: missing required arrays {missing} "
                             f"(required: {list(needed)})")
    ignored = sorted(n for n in candidate if n not in schema.OUTPUTS)
    tensors = [compare_tensor(case, n, conform(case, n, candidate[n]))
               for n in schema.OUTPUTS if n in candidate]
    not_provided = [n for n in schema.OUTPUTS if n not in candidate]
    return CheckReport(case.name, str(case.dtype), case.sizes, tensors, not_provided, ignored)


def check_callable(case, fn: Callable[[Case], Mapping], require=()) -> CheckReport:
    """Run fn(case) -> {name: array} on a Case (or a case path) and check what it returns.

    fn reads the inputs from `case.problem` (a verify.problem.Problem: p, q, V, x, reset, c_0, y)
    or `case.inputs()`, and `case.trace_steps` for the steps at which traces are compared.
    """
    case = case if isinstance(case, Case) else load_case(case)
    return check_candidate(case, fn(case), require)


def check_files(case_path, candidate_path, require=()) -> CheckReport:
    """Load a case and a candidate .npz and check them."""
    case = load_case(case_path)
    candidate = read_npz(Path(candidate_path), "candidate")
    return check_candidate(case, candidate, require)
