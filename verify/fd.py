"""Central finite differences, float64, over parameter pytrees.

    dL/da[j] ~ (L(a + eps e_j) - L(a - eps e_j)) / (2 eps)

The arrays are perturbed in place and restored, so `f` must read them from the same objects.
A full sweep for tiny arrays; `max_entries` sampled entries (always including the entry of
largest analytic magnitude) for larger ones.

Noise: the difference quotient carries a round-off error of about |L| * 1e-16 / eps and a
truncation error of about eps^2 |L'''|. With eps = 1e-5 both are near 1e-11 * |L|, so the
relative error uses the floor FD_FLOOR * (1 + |L|): a gradient tensor much smaller than the loss
is checked to an absolute 1e-9 * (1 + |L|), still 100x above the noise. A gradient that is zero
by construction is checked to the same absolute bound (verify/compare.py, structural zeros).

`fd_check` is the one finite-difference check of the project: every analytic backward (BPTT,
stems, convolution, pooling, heads, loss) is compared with it, leaf by leaf of its parameter tree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verify.compare import Comparison, judge, measure, named_leaves, tolerance

EPS = 1e-5
FD_FLOOR = 1e-3


def central_difference(f: Callable[[], float], a: np.ndarray, index: tuple, eps: float) -> float:
    old = a[index]
    a[index] = old + eps
    f_plus = f()
    a[index] = old - eps
    f_minus = f()
    a[index] = old
    return (f_plus - f_minus) / (2 * eps)


def fd_entries(f: Callable[[], float], a: np.ndarray, indices: list[tuple], eps: float = EPS) -> np.ndarray:
    if a.dtype != np.float64:
        raise ValueError(f"finite differences: expected a float64 array, got {a.dtype}")
    return np.array([central_difference(f, a, idx, eps) for idx in indices])   # (n,)


def choose_indices(shape: tuple, max_entries: int | None, rng: np.random.Generator,
                   analytic: np.ndarray | None = None) -> list[tuple]:
    every = list(np.ndindex(*shape))
    if max_entries is None or len(every) <= max_entries:
        return every
    picks = set(int(k) for k in rng.choice(len(every), max_entries, replace=False))
    if analytic is not None:
        picks.add(int(np.argmax(np.abs(analytic))))
    return [every[k] for k in sorted(picks)]


def fd_measure(name: str, f: Callable[[], float], a: np.ndarray, analytic: np.ndarray, tol: float,
               eps: float, max_entries: int | None, rng: np.random.Generator) -> Comparison:
    """One array, not yet judged as a group."""
    indices = choose_indices(a.shape, max_entries, rng, analytic)
    numeric = fd_entries(f, a, indices, eps)                                     # (n,)
    analytic_sel = np.array([np.asarray(analytic)[idx] for idx in indices])      # (n,)
    return measure(name, analytic_sel, numeric, tol, floor=FD_FLOOR * (1 + abs(f())))


def check_against_fd(name: str, f: Callable[[], float], a: np.ndarray, analytic: np.ndarray,
                     tol: float, eps: float = EPS, max_entries: int | None = None,
                     rng: np.random.Generator | None = None) -> Comparison:
    """One array as a check of its own (a zero reference fails as vacuous)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    return judge([fd_measure(name, f, a, analytic, tol, eps, max_entries, rng)])[0]


def fd_check(name: str, f: Callable[[], float], params, grads, tol: float | None = None,
             max_entries: int | None = None, seed: int = 0, eps: float = EPS) -> list[Comparison]:
    """Analytic gradients `grads` of the scalar f() against central differences, leaf by leaf.

    `params` and `grads` are pytrees of the same structure (NamedTuples, tuples, lists, dicts of
    float64 arrays; a bare array is a tree of one leaf); f() must read the arrays of `params`.
    Rows are named `name.<leaf path>` and judged as one group (verify/compare.py)."""
    p_named, g_named = named_leaves(params, name), named_leaves(grads, name)
    if [n for n, _ in p_named] != [n for n, _ in g_named]:
        raise ValueError(f"fd_check: grads must have the leaves {[n for n, _ in p_named]}, "
                         f"got {[n for n, _ in g_named]}")
    tol = tolerance("fd", np.float64) if tol is None else tol
    rng = np.random.default_rng(seed)
    return judge([fd_measure(leaf, f, a, g, tol, eps, max_entries, rng)
                  for (leaf, a), (_, g) in zip(p_named, g_named)])
