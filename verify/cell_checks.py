"""The verification properties of the IndRNN, minGRU and LRU (rtrl_ref.cells), each written once.

docs/derivation.md, section 10 (Eqs. 19-33). Every check returns judged `verify.compare.Comparison`
rows; the audit (`python -m verify audit`) turns them into report rows, and its negative twins pass a
deliberately wrong gradient from verify.cell_broken in the `cell`, `bptt_driver` or `rtrl` argument.

    CellProblem, make_cell_problem(name, seed, T, B, I, H, dtype, regime, resets)
    loss_and_g(prob, s)             L = sum a Re(s) + c Re(s)^2 / 2 (+ the same of Im(s)), and g_s
    check_cell_bptt_fd(prob)        full BPTT vs central finite differences (float64): every parameter,
                                    x and both real parts of s_0 (Eq. 29: a complex number is two reals)
    check_cell_rtrl_step(prob)      step-form RTRL on a backend (numpy | numba) vs full BPTT, run as
                                    consecutive calls cut at `cuts` (state and traces carried), and the
                                    final state vs the forward pass

The loss reads every state non-linearly, so the immediate gradient g_s = a + c s depends on the
forward pass (as the heads' gradient of an agent does). Regimes (`CELL_REGIMES`), on top of the cell's
own init:

    normal     every parameter perturbed by N(0, 0.3^2)
    saturated  N(0, 2.5^2): tanh and sigmoid saturate (IndRNN, minGRU); |lam| near 0 or 1 (LRU)
    slow       J_t near 1, a long memory: IndRNN u in [0.95, 1], minGRU z_t near 0 (b_z - 4), LRU
               |lam| in [0.99, 0.999]

Reset patterns: those of verify.problem (every row alike, or random per step and row) and `rows`:
row 0 resets in the middle, the last row never, the others at random steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from rtrl_ref.cells import bptt, forward, get_cell, rtrl_sequence
from rtrl_ref.cells.interface import Cell, add_grads
from verify.compare import Comparison, compare_fields, judge, measure, tolerance
from verify.fd import fd_check
from verify.problem import RESET_PATTERNS, reset_mask

CELL_NAMES = ("indrnn", "mingru", "lru")
# Central differences' step: 1e-6, not verify.fd's 1e-5. The LRU's phase enters h_t as
# exp(i t exp(theta)), so the truncation error of the theta difference grows as (t exp(theta))^3 eps^2:
# measured 1.5e-5 relative at T=200 with eps=1e-5, 1.5e-7 with 1e-6 (the round-off stays ~1e-10).
CELL_FD_EPS = 1e-6
CELL_REGIMES = ("normal", "saturated", "slow")
CELL_RESETS = RESET_PATTERNS + ("rows",)
SCALE = {"normal": 0.3, "saturated": 2.5, "slow": 0.3}


class CellProblem(NamedTuple):
    cell: Cell
    p: tuple               # the cell's params NamedTuple (real)
    x: np.ndarray          # (T, B, I)
    reset: np.ndarray      # (T, B) bool
    s_0: np.ndarray        # (B, H) carried-in state (complex for the LRU)
    coef: np.ndarray       # (4, T, B, H) loss coefficients a, c (real part), a, c (imaginary part)

    @property
    def complex_state(self) -> bool:
        return bool(np.iscomplexobj(self.s_0))


def row_resets(rng: np.random.Generator, T: int, B: int) -> np.ndarray:
    """(T, B): row 0 resets at T // 2, the last row (B > 1) never, the others with p = 0.15 per step."""
    reset = rng.random((T, B)) < 0.15                                 # (T, B)
    reset[:, 0] = False
    reset[T // 2, 0] = True
    if B > 1:
        reset[:, -1] = False
    return reset


def regime_params(name: str, p, regime: str, rng: np.random.Generator):
    """The cell's init (float64) moved into `regime` (module docstring)."""
    p = type(p)(*(a + SCALE[regime] * rng.standard_normal(a.shape) for a in p))
    if regime == "slow":
        H = p[0].shape[0]
        if name == "indrnn":
            p = p._replace(u=rng.uniform(0.95, 1.0, H))
        elif name == "mingru":
            p = p._replace(b_z=p.b_z - 4.0)
        else:
            radius_sq = rng.uniform(0.99**2, 0.999**2, H)                # (H,) |lam|^2
            p = p._replace(nu=np.log(-0.5 * np.log(radius_sq)))
    if name == "lru":
        # phases beyond 2 pi only wrap around, and the finite differences' truncation error grows
        # with exp(theta)^3: keep arg(lam) = exp(theta) in (0, 2 pi] as the LRU's init does
        p = p._replace(theta=np.minimum(p.theta, np.log(2 * np.pi)))
    return p


def make_cell_problem(name: str, seed: int, T: int, B: int, I: int, H: int, dtype="float64",
                      regime: str = "normal", resets: str | np.ndarray = "rows") -> CellProblem:
    """A random problem of cell `name`, drawn in float64 from `seed` and cast to `dtype`."""
    if regime not in CELL_REGIMES:
        raise ValueError(f"regime: expected one of {CELL_REGIMES}, got {regime!r}")
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    p = regime_params(name, cell.init(rng, I, H, np.float64), regime, rng)
    if name == "indrnn" and dtype == np.float32:
        # |u| <= 1, so |J_t| <= 1: with |u| > 1 the forward is expansive and any two float32 runs
        # (whose tanh differ in the last bit) drift apart; that regime is drawn in float64 only
        p = p._replace(u=np.clip(p.u, -1.0, 1.0))
    x = rng.standard_normal((T, B, I))                                # (T, B, I)
    if isinstance(resets, str):
        if resets not in CELL_RESETS:
            raise ValueError(f"resets: expected one of {CELL_RESETS}, got {resets!r}")
        resets = row_resets(rng, T, B) if resets == "rows" else reset_mask(rng, T, B, resets)
    s_0 = 0.5 * rng.standard_normal((B, H))                           # (B, H)
    s_0_im = 0.5 * rng.standard_normal((B, H))                        # (B, H) drawn for every cell
    coef = rng.standard_normal((4, T, B, H))                          # (4, T, B, H)
    p = type(p)(*(a.astype(dtype) for a in p))
    state = cell.zero_state(p, 1).dtype
    if np.issubdtype(state, np.complexfloating):
        s_0 = s_0 + 1j * s_0_im
    return CellProblem(cell, p, x.astype(dtype), np.asarray(resets, bool), s_0.astype(state), coef.astype(dtype))


def loss_and_g(prob: CellProblem, s) -> tuple[float, np.ndarray]:
    """L = sum a Re(s) + c Re(s)^2 / 2 (+ the same of Im(s), complex states); g_s = dL/dRe(s) +
    i dL/dIm(s) (Eq. 29), (T, B, H) in the state's dtype."""
    a, c, a_im, c_im = prob.coef
    L = np.sum(a * s.real + 0.5 * c * s.real**2)
    g = a + c * s.real                                                # (T, B, H)
    if np.iscomplexobj(s):
        L += np.sum(a_im * s.imag + 0.5 * c_im * s.imag**2)
        g = g + 1j * (a_im + c_im * s.imag)                           # (T, B, H)
    return float(L), g.astype(s.dtype)


def as_real(a):
    """A complex array as its real and imaginary parts stacked (the comparisons are real)."""
    return np.stack([a.real, a.imag]) if np.iscomplexobj(a) else a


def check_cell_bptt_fd(prob: CellProblem, cell: Cell | None = None, bptt_driver: Callable = bptt,
                       max_entries: int | None = None, seed: int = 0, eps: float = CELL_FD_EPS) -> list[Comparison]:
    """Full BPTT (Eq. 19 with the cell's step_backward) of the loss vs central differences (float64):
    every parameter, x, and Re/Im of s_0. `cell` (default: the problem's) and `bptt_driver` are the
    gradient code under check; the differences always run the problem's own forward pass."""
    if prob.x.dtype != np.float64:
        raise ValueError(f"prob: expected float64 for finite differences, got {prob.x.dtype}")

    def f():
        return loss_and_g(prob, forward(prob.cell, prob.p, prob.x, prob.reset, prob.s_0).s)[0]

    traj = forward(prob.cell, prob.p, prob.x, prob.reset, prob.s_0)
    _, g_s = loss_and_g(prob, traj.s)
    back = bptt_driver(cell or prob.cell, prob.p, traj, prob.reset, g_s)
    params = {"p": prob.p, "x": prob.x, "s_0.re": prob.s_0.real}       # .real, .imag: writeable views
    grads = {"p": back.grads, "x": back.g_x, "s_0.re": back.g_s0.real}
    if prob.complex_state:
        params["s_0.im"], grads["s_0.im"] = prob.s_0.imag, back.g_s0.imag
    return fd_check("grad", f, params, grads, max_entries=max_entries, seed=seed, eps=eps)


def rtrl_on(backend: str) -> Callable:
    """The step-form driver on `backend`: (cell, p, x, reset, g_s, s_0, traces) -> RTRLResult."""
    return functools.partial(rtrl_sequence, backend=backend)


def check_cell_rtrl_step(prob: CellProblem, backend: str = "numpy", rtrl: Callable | None = None,
                         cuts: Sequence[int] = (), cell: Cell | None = None) -> list[Comparison]:
    """Step-form RTRL (`rtrl`, default rtrl_sequence on `backend`) vs full BPTT, tolerance('exact',
    dtype): run as consecutive calls cut at `cuts`, each carrying the state and traces of the one
    before, the summed gradient must equal BPTT over the whole sequence (from s_0, zero traces),
    and the final state the forward pass's."""
    T = prob.x.shape[0]
    cuts = sorted(set(int(c) for c in cuts))
    if any(not 0 < c < T for c in cuts):
        raise ValueError(f"cuts: expected steps in 1..{T - 1}, got {cuts}")
    rtrl = rtrl or rtrl_on(backend)
    traj = forward(prob.cell, prob.p, prob.x, prob.reset, prob.s_0)
    _, g_s = loss_and_g(prob, traj.s)
    want = bptt(prob.cell, prob.p, traj, prob.reset, g_s).grads
    s, traces, total = prob.s_0, None, None
    for start, stop in zip([0] + cuts, cuts + [T]):
        res = rtrl(cell or prob.cell, prob.p, prob.x[start:stop], prob.reset[start:stop], g_s[start:stop],
                   s, traces)
        s, traces, total = res.s, res.traces, add_grads(total, res.grads)
    tol = tolerance("exact", prob.x.dtype)
    return (compare_fields("grad", total, want, tol)
            + judge([measure("final state", as_real(s), as_real(traj.s[-1]), tol)]))
