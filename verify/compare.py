"""How two gradients are compared: one error definition, one tolerance table, one zero rule.

Relative error of a candidate `a` against a reference `b` (same shape):

    rel(a, b) = max|a - b| / max(max|b|, floor)

a norm-wise (max-norm) relative error: element-wise relative errors are meaningless where the
reference is near zero. `floor` is the comparison's noise scale: 1e-30 (so effectively exact) for
exact reformulations, a fraction of the container's largest entry (CONTAINER_FLOOR),
the finite-difference noise for finite differences (verify/fd.py).

Structural zeros (the one rule, applied by `judge`). A tensor whose reference is identically zero
is a quantity that is zero by construction: the w_z and w_f gradients when every step resets
(c_tm1 = 0, docs/derivation.md Eq. 10), the c_0 gradient when every row resets at step 0, the
vector traces after a reset at the last step, the value gradient of a loss without a baseline
term. Such a tensor is judged by the same formula, which then reads max|a| / floor <= tol: the
candidate must be zero to within the floor (exactly zero for a lone exact comparison; within
the container floor inside a container). It is marked
`vacuous` because on its own it proves little. A group of comparisons (one check: a gradient
container, a pytree of parameters) in which EVERY reference is zero fails as vacuous: such a
check could not have detected a wrong gradient of a non-trivial problem. A single `compare` is a
group of one.
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


# Within one gradient container (e.g. the six eLSTM gradients), a tensor much smaller than the
# largest one is the result of cancellation and carries the round-off of the large terms it sums;
# it is judged against this fraction of the container's largest entry. Both fractions excuse an
# error of about 20-50 units in the last place of the container's largest entry (tol x floor / eps),
# never an error the size of a small tensor itself.
# (Measured in float32: a b_z gradient of 2e-5 among W_z entries of 1.6 showed a 1.4e-2 relative
# error. In float64: with saturated gates (z and f pre-activations 4.6 and 8), a W_z trace of 2.9e-7
# among traces up to 0.18 differed between the dense reference and the step form by 1.2e-16 in
# absolute terms, 4e-10 relative to itself; with this floor that reads 7e-12.)
CONTAINER_FLOOR = {"float32": 1e-2, "float64": 1e-4}
TINY = 1e-30


def tolerance(kind: str, dtype) -> float:
    key = (kind, np.dtype(dtype).name)
    if key not in TOLERANCES:
        raise ValueError(f"tolerance: no entry for comparison {kind!r} in dtype {key[1]}; "
                         f"known: {sorted(TOLERANCES)}")
    return TOLERANCES[key]


def to_numpy(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def rel_error(a, b, floor: float = TINY) -> float:
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
    vacuous: bool         # reference identically zero (a structural zero; see the module docstring)
    relation: str = "<="  # "<=": agreement within tol; ">=": a difference that must be measurable

    def message(self) -> str:
        if self.ok:
            verdict = "ok (zero by construction)" if self.vacuous else "ok"
        else:
            verdict = "VACUOUS (every reference zero)" if self.vacuous and self.rel <= self.tol else "FAIL"
        return (f"{self.name}: rel {self.rel:.3e} ({self.relation} {self.tol:.1e}), "
                f"max abs {self.max_abs:.3e}: {verdict}")


def judge(comparisons: list[Comparison]) -> list[Comparison]:
    """The structural-zero rule for one check: if every reference is zero, every row fails."""
    if comparisons and all(c.vacuous for c in comparisons):
        return [c._replace(ok=False) for c in comparisons]
    return list(comparisons)


def measure(name: str, a, b, tol: float, floor: float = TINY) -> Comparison:
    """One tensor, not yet judged as a group (see `judge`)."""
    a_np = to_numpy(a).astype(np.float64)
    b_np = to_numpy(b).astype(np.float64)
    rel = rel_error(a_np, b_np, floor)
    max_abs = float(np.max(np.abs(a_np - b_np), initial=0.0))
    ok = rel <= tol and bool(np.all(np.isfinite(a_np)))
    return Comparison(name, max_abs, rel, tol, ok, not np.any(b_np != 0))


def compare(name: str, a, b, tol: float, floor: float = TINY) -> Comparison:
    """One tensor as a check of its own: a zero reference fails as vacuous."""
    return judge([measure(name, a, b, tol, floor)])[0]


def differs(name: str, a, b, threshold: float) -> Comparison:
    """A difference that must be measurable: rel(a, b) >= threshold (e.g. a truncation bias)."""
    c = measure(name, a, b, threshold)
    return c._replace(ok=c.rel >= threshold and not c.vacuous, relation=">=")


def named_leaves(tree, prefix: str = "") -> list[tuple[str, object]]:
    """(dotted name, array) of every leaf of a pytree: NamedTuples, tuples, lists, dicts of arrays."""
    if isinstance(tree, dict):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        items = list(zip(tree._fields, tree))
    elif isinstance(tree, (tuple, list)):
        items = [(str(k), v) for k, v in enumerate(tree)]
    else:
        return [(prefix, tree)]
    out = []
    for key, sub in items:
        if sub is not None:
            out += named_leaves(sub, f"{prefix}.{key}" if prefix else key)
    return out


def container_floor(a_leaves, b_leaves) -> float:
    """CONTAINER_FLOOR of the lowest precision involved, times the largest reference entry."""
    dtypes = {np.dtype(x.dtype).name for x in (*a_leaves, *b_leaves)}
    fraction = CONTAINER_FLOOR["float32"] if "float32" in dtypes else CONTAINER_FLOOR["float64"]
    return fraction * max((float(np.max(np.abs(to_numpy(x)), initial=0.0)) for x in b_leaves), default=0.0)


def compare_fields(prefix: str, a, b, tol: float) -> list[Comparison]:
    """Compare two pytrees (e.g. ELSTMParams of gradients) leaf by leaf, judged as one group."""
    a_named, b_named = named_leaves(a, prefix), named_leaves(b, prefix)
    if [n for n, _ in a_named] != [n for n, _ in b_named]:
        raise ValueError(f"compare_fields: expected the leaves {[n for n, _ in b_named]}, "
                         f"got {[n for n, _ in a_named]}")
    floor = max(container_floor([x for _, x in a_named], [x for _, x in b_named]), TINY)
    return judge([measure(name, x, y, tol, floor) for (name, x), (_, y) in zip(a_named, b_named)])


def failures(comparisons: list[Comparison]) -> list[str]:
    return [c.message() for c in comparisons if not c.ok]


def assert_close(name: str, a, b, tol: float):
    """Assert with a readable message (used by tests)."""
    c = compare(name, a, b, tol)
    assert c.ok, c.message()
    return c


def assert_fields_close(prefix: str, a, b, tol: float):
    results = compare_fields(prefix, a, b, tol)
    bad = failures(results)
    assert not bad, "\n".join(bad)
    return results


def assert_all_ok(comparisons: list[Comparison], where: str = ""):
    """Assert every comparison of a check passed (tests call the verify.checks functions this way)."""
    bad = failures(comparisons)
    assert comparisons and not bad, (where + "\n" if where else "") + ("\n".join(bad) or "no comparisons")


def assert_detected(comparisons: list[Comparison], where: str = ""):
    """Negative twin: the check must fail on a deliberately wrong gradient."""
    assert any(not c.ok for c in comparisons), f"wrong gradient passed the check {where}".strip()
