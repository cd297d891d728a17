"""How two gradients are compared: one error definition, one tolerance table.

Relative error of a candidate `a` against a reference `b` (same shape):

    rel(a, b) = max|a - b| / max(max|b|, floor)

a norm-wise (max-norm) relative error: element-wise relative errors are meaningless where the
reference is near zero. `floor` (default 1e-30) avoids a division by zero; finite differences set
it to their noise scale (see verify/fd.py). A check whose reference is all zero is refused
(`vacuous`), because it could not fail.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Tolerances on rel(a, b), keyed by (comparison, dtype). Values measured on the test regimes
# (see tests/) with a safety margin; each comparison is shown to fail on a wrong gradient.
TOLERANCES = {
    # exact reformulations of one quantity (RTRL vs BPTT, segment vs step, dense vs RTRL)
    ("exact", "float64"): 1e-10,
    ("exact", "float32"): 2e-4,
    # a float32 computation against the float64 one: the float32 forward pass itself rounds
    # (measured worst case 3.1e-4 over 1000 hypothesis examples; 1e-3 with saturated gates)
    ("vs_float64", "float32"): 2e-3,
    # a kernel against the NumPy reference in the same dtype
    ("kernel", "float64"): 1e-12,
    ("kernel", "float32"): 2e-5,
    # analytic gradient against central finite differences (float64 only)
    ("fd", "float64"): 1e-6,
}


# float32 only: within one gradient container (e.g. the six eLSTM gradients), a tensor much
# smaller than the largest one is the result of cancellation and carries the round-off of the
# large terms it sums; it is judged against this fraction of the container's largest entry.
# (Measured: a b_z gradient of 2e-5 among W_z entries of 1.6 showed a 1.4e-2 relative error.)
CONTAINER_FLOOR = {"float32": 1e-2, "float64": 0.0}


def tolerance(kind: str, dtype) -> float:
    key = (kind, np.dtype(dtype).name)
    if key not in TOLERANCES:
        raise ValueError(f"tolerance: no entry for comparison {kind!r} in dtype {key[1]}; "
                         f"known: {sorted(TOLERANCES)}")
    return TOLERANCES[key]


def to_numpy(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def rel_error(a, b, floor: float = 1e-30) -> float:
    a = to_numpy(a).astype(np.float64)
    b = to_numpy(b).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, candidate {a.shape} vs reference {b.shape}")
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), floor))


class Comparison(NamedTuple):
    name: str
    max_abs: float
    rel: float
    tol: float
    ok: bool
    vacuous: bool   # reference identically zero: the check could not fail

    def message(self) -> str:
        verdict = "ok" if self.ok else ("VACUOUS (zero reference)" if self.vacuous else "FAIL")
        return f"{self.name}: rel {self.rel:.3e} (tol {self.tol:.1e}), max abs {self.max_abs:.3e}: {verdict}"


def compare(name: str, a, b, tol: float, floor: float = 1e-30) -> Comparison:
    a_np = to_numpy(a).astype(np.float64)
    b_np = to_numpy(b).astype(np.float64)
    rel = rel_error(a_np, b_np, floor)
    max_abs = float(np.max(np.abs(a_np - b_np), initial=0.0))
    vacuous = not np.any(b_np != 0)
    ok = (rel <= tol) and not vacuous and bool(np.all(np.isfinite(a_np)))
    return Comparison(name, max_abs, rel, tol, ok, vacuous)


def container_floor(a, b) -> float:
    """CONTAINER_FLOOR of the lowest precision involved, times the largest reference entry."""
    dtypes = {np.dtype(x.dtype).name for x in (*a, *b)}
    fraction = CONTAINER_FLOOR["float32"] if "float32" in dtypes else CONTAINER_FLOOR["float64"]
    return fraction * max(float(np.max(np.abs(to_numpy(x)), initial=0.0)) for x in b)


def compare_fields(prefix: str, a, b, tol: float, allow_zero: tuple[str, ...] = ()) -> list[Comparison]:
    """Compare two NamedTuples field by field (e.g. ELSTMParams of gradients)."""
    out = []
    floor = max(container_floor(a, b), 1e-30)
    for field in a._fields:
        c = compare(f"{prefix}.{field}", getattr(a, field), getattr(b, field), tol, floor)
        if c.vacuous and field in allow_zero:
            c = c._replace(ok=c.max_abs == 0.0, vacuous=False)
        out.append(c)
    return out


def assert_close(name: str, a, b, tol: float):
    """Assert with a readable message (used by tests)."""
    c = compare(name, a, b, tol)
    assert c.ok, c.message()
    return c


def assert_fields_close(prefix: str, a, b, tol: float, allow_zero: tuple[str, ...] = ()):
    results = compare_fields(prefix, a, b, tol, allow_zero)
    bad = [c.message() for c in results if not c.ok]
    assert not bad, "\n".join(bad)
    return results
