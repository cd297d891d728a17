"""Central finite differences, float64.

    dL/da[j] ~ (L(a + eps e_j) - L(a - eps e_j)) / (2 eps)

The arrays are perturbed in place and restored, so `f` must read them from the same objects.
A full sweep for tiny arrays; `max_entries` sampled entries (always including the entry of
largest analytic magnitude when one is given) for larger ones.

Noise: the difference quotient carries a round-off error of about |L| * 1e-16 / eps and a
truncation error of about eps^2 |L'''|. With eps = 1e-5 both are near 1e-11 * |L|, so the
relative error uses the floor FD_FLOOR * (1 + |L|): a gradient tensor much smaller than the loss
is checked to an absolute 1e-9 * (1 + |L|), still 100x above the noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verify.compare import Comparison, compare


def central_difference(f: Callable[[], float], a: np.ndarray, index: tuple, eps: float) -> float:
    old = a[index]
    a[index] = old + eps
    f_plus = f()
    a[index] = old - eps
    f_minus = f()
    a[index] = old
    return (f_plus - f_minus) / (2 * eps)


EPS = 1e-5
FD_FLOOR = 1e-3


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


def check_against_fd(name: str, f: Callable[[], float], a: np.ndarray, analytic: np.ndarray,
                     tol: float, eps: float = EPS, max_entries: int | None = None,
                     rng: np.random.Generator | None = None) -> Comparison:
    """Compare an analytic gradient with central differences on (some of) its entries."""
    rng = rng if rng is not None else np.random.default_rng(0)
    indices = choose_indices(a.shape, max_entries, rng, analytic)
    numeric = fd_entries(f, a, indices, eps)
    analytic_sel = np.array([analytic[idx] for idx in indices])
    return compare(name, analytic_sel, numeric, tol, floor=FD_FLOOR * (1 + abs(f())))
