"""Naming common mistakes: what a failing candidate matches once a simple transformation is undone.

The checker hands over every compared tensor as a `Pair` (candidate and reference in float64, as
compared). For the failing ones, each rule below undoes one transformation and asks whether the
candidate then matches the reference, to within DIAG_FACTOR times the tensor's tolerance:

    scale       a = r * b for one factor r != 1 shared by several tensors of two or more non-zero
                entries each, or r = 1/B, 1/T or 1/(T*B) (a mean where the oracle sums), or B, T, T*B
    sign        a = -b
    transpose   a equals b with two equal-length axes swapped (e.g. (I, H) stored for (H, I))
    swap        a_u = b_v and a_v = b_u for two tensors of the same shape (W_z/W_f, w_z/b_z, ...),
                or a_u = b_v only ("holds the values of")
    time shift  a at step t equals b at step t-1 (one step late) or t+1 (one step early)
    zero        a is all zero where b is not (never computed, or read before it is written)

A rule only fires on a failing tensor whose reference is not all zero, and never when the
transformation leaves the reference unchanged (a shift of a constant, a symmetric matrix), so a
tensor that is merely wrong gets no diagnosis. Pickle and torch.save files are named when they are
read (verify.oracle.io).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

DIAG_FACTOR = 10.0
MIN_FACTOR_GAP = 1e-4        # a factor closer than this to 1, -1 or 0 is not reported as a scale


class Pair(NamedTuple):
    name: str
    candidate: np.ndarray        # float64, the shape the reference has
    reference: np.ndarray        # float64
    tol: float
    ok: bool
    dims: tuple                  # dimension symbols, e.g. ("N", "B", "H", "I")
    steps: np.ndarray | None     # (M,) time step of each index of the leading axis, else None


class Diagnosis(NamedTuple):
    rule: str                    # scale, sign, transpose, swap, time shift, zero
    tensors: tuple
    message: str

    def to_dict(self) -> dict:
        return {"rule": self.rule, "tensors": list(self.tensors), "message": self.message}


def matches(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    """a equals b to within DIAG_FACTOR * tol * max|b| (b not all zero, a finite)."""
    if a.shape != b.shape or a.size == 0 or not np.all(np.isfinite(a)):
        return False
    scale = float(np.max(np.abs(b)))
    if scale == 0.0:
        return False
    return float(np.max(np.abs(a - b))) <= DIAG_FACTOR * tol * scale


def _names(tensors) -> str:
    return ", ".join(tensors)


def scale_factor(pair: Pair) -> float | None:
    """The least-squares factor r with candidate = r * reference, if that fits and r is not 1 or -1."""
    a, b = pair.candidate, pair.reference
    bb = float(np.vdot(b, b))
    if bb == 0.0 or not np.all(np.isfinite(a)):
        return None
    r = float(np.vdot(a, b)) / bb
    near = max(DIAG_FACTOR * pair.tol, MIN_FACTOR_GAP)
    if abs(r - 1.0) <= near or abs(r + 1.0) <= near or abs(r) <= near:
        return None
    return r if matches(a, r * b, pair.tol) else None


def name_factor(r: float, sizes: dict) -> str:
    """'1/B (B=4): ...' when r matches a batch or time count or its inverse, else ''."""
    T, B = sizes["T"], sizes["B"]
    what = {"B": "the batch", "T": "time", "T*B": "time and batch"}
    for label, n in (("B", B), ("T", T), ("T*B", T * B)):
        if n <= 1:
            continue
        if abs(r * n - 1.0) <= 1e-3:
            return (f" = 1/{label} ({label}={n}): a mean over {what[label]} where the oracle sums; "
                    f"sum over {what[label]} instead")
        if abs(r / n - 1.0) <= 1e-3:
            return (f" = {label} ({label}={n}): a sum over {what[label]} where the candidate "
                    f"should take one term, or a mean expected by the candidate's own loss")
    return ""


def diagnose_scale(pairs: list[Pair], sizes: dict) -> list[Diagnosis]:
    found = [(p, r) for p in pairs if not p.ok for r in [scale_factor(p)] if r is not None]
    found.sort(key=lambda pr: pr[1])
    groups: list[list] = []
    for p, r in found:
        if groups and abs(r - groups[-1][0][1]) <= max(DIAG_FACTOR * p.tol, 1e-9) * abs(r):
            groups[-1].append((p, r))
        else:
            groups.append([(p, r)])
    out = []
    for group in groups:
        names = tuple(p.name for p, _ in group)
        r = float(np.mean([r for _, r in group]))
        label = name_factor(r, sizes)
        # any one number is a multiple of another: an unnamed factor needs two or more tensors,
        # each with two or more non-zero reference entries, to be evidence of a shared scale
        if not label and (len(group) < 2 or any(np.count_nonzero(p.reference) < 2 for p, _ in group)):
            continue
        count = f"{len(names)} tensors ({_names(names)})" if len(names) > 1 else names[0]
        verb = "equal" if len(names) > 1 else "equals"
        msg = f"scale: {count} {verb} the reference times {r:.6g}{label}"
        if not label:
            msg += " (one shared factor: a loss weight or step size folded into the gradient?)"
        out.append(Diagnosis("scale", names, msg))
    return out


def diagnose_sign(pairs: list[Pair]) -> list[Diagnosis]:
    names = tuple(p.name for p in pairs if not p.ok and matches(p.candidate, -p.reference, p.tol))
    if not names:
        return []
    verb = "equal" if len(names) > 1 else "equals"
    return [Diagnosis("sign", names, f"sign: {_names(names)} {verb} minus the reference (a flipped "
                                     f"sign: one term subtracted where it is added, or -gradient stored)")]


def diagnose_transpose(pairs: list[Pair]) -> list[Diagnosis]:
    found: dict = {}                                                  # (axis a, axis b) -> names
    for p in pairs:
        if p.ok:
            continue
        first = 1 if p.steps is not None else 0
        shape = p.reference.shape
        for i in range(first, len(shape)):
            for j in range(i + 1, len(shape)):
                if shape[i] != shape[j] or shape[i] < 2:
                    continue
                swapped = np.swapaxes(p.reference, i, j)
                if matches(swapped, p.reference, p.tol):
                    continue                                          # symmetric: says nothing
                if matches(np.swapaxes(p.candidate, i, j), p.reference, p.tol):
                    found.setdefault((p.dims[i], p.dims[j]), []).append(p.name)
    out = []
    for (a, b), names in found.items():
        verb = "equal" if len(names) > 1 else "equals"
        out.append(Diagnosis("transpose", tuple(names),
                             f"transpose: {_names(names)} {verb} the reference with axes {a} and {b} "
                             f"swapped (stored as the transpose: ({b}, {a}) where ({a}, {b}) is expected)"))
    return out


def diagnose_swap(pairs: list[Pair]) -> list[Diagnosis]:
    out, done = [], set()
    failing = [p for p in pairs if not p.ok]
    by_name = {p.name: p for p in pairs}
    for u in failing:
        for v in by_name.values():
            if v.name == u.name or v.reference.shape != u.reference.shape or (v.name, u.name) in done:
                continue
            if matches(u.reference, v.reference, u.tol):
                continue                                              # the two references agree
            if not matches(u.candidate, v.reference, u.tol):
                continue
            if matches(v.candidate, u.reference, v.tol):
                done.add((u.name, v.name))
                out.append(Diagnosis("swap", (u.name, v.name),
                                     f"swap: {u.name} and {v.name} hold each other's values "
                                     f"(two fields exchanged)"))
            else:
                out.append(Diagnosis("swap", (u.name, v.name),
                                     f"swap: {u.name} holds the values of {v.name} (a field "
                                     f"written twice, or read from the wrong name)"))
    return out


def diagnose_time_shift(pairs: list[Pair], reset: np.ndarray, reference_at: Callable | None) -> list[Diagnosis]:
    """One step late: a[t] = b[t-1]; early: a[t] = b[t+1] (per-step tensors only).

    A row's entries at a step that separates t from t -/+ 1 by a reset (reset[t] for late,
    reset[t+1] for early) are left out: across a reset the shifted values differ anyway."""
    T = reset.shape[0]
    late, early = [], []
    for p in pairs:
        if p.ok or p.steps is None or p.steps.size < 1:
            continue
        for shift, bucket in ((-1, late), (1, early)):
            want = p.steps + shift                                    # (M,) steps to compare with
            keep = (want >= -1) & (want < T)
            if reference_at is not None and p.name.startswith("trace_"):
                shifted = reference_at(p.name, want[keep])            # (M', ...) zeros at step -1
            else:
                keep &= want >= 0                                     # full-T tensors: the stored reference
                if not np.array_equal(p.steps, np.arange(p.steps.size)):
                    continue
                shifted = p.reference[want[keep]]
            if not keep.any() or shifted is None:
                continue
            a, b = p.candidate[keep], p.reference[keep]
            if len(p.dims) > 1 and p.dims[1] == "B":
                across = reset[p.steps[keep] if shift < 0 else np.minimum(want[keep], T - 1)]   # (M', B)
                across = across.reshape(across.shape + (1,) * (a.ndim - 2))
                a, b, shifted = (np.where(across, 0.0, v) for v in (a, b, shifted))
            if matches(shifted, b, p.tol):
                continue                                              # constant in time: says nothing
            if matches(a, shifted, p.tol):
                bucket.append(p.name)
    out = []
    if late:
        out.append(Diagnosis("time shift", tuple(late),
                             f"time shift: {_names(late)} at step t equal the reference at step t-1 "
                             f"(one step late: a value stored before its update, or x_(t-1) used at "
                             f"step t)"))
    if early:
        out.append(Diagnosis("time shift", tuple(early),
                             f"time shift: {_names(early)} at step t equal the reference at step t+1 "
                             f"(one step early)"))
    return out


def diagnose_zero(pairs: list[Pair]) -> list[Diagnosis]:
    names = tuple(p.name for p in pairs if not p.ok and not np.any(p.candidate)
                  and np.all(np.isfinite(p.candidate)) and np.any(p.reference))
    if not names:
        return []
    verb = "are" if len(names) > 1 else "is"
    return [Diagnosis("zero", names, f"zero: {_names(names)} {verb} all zero where the reference "
                                     f"is not (never computed, or read before it is written)")]


def diagnose(pairs: list[Pair], sizes: dict, reset: np.ndarray,
             reference_at: Callable | None = None) -> list[Diagnosis]:
    """Every diagnosis of the failing pairs (none when all pass).

    reset (T, B): the case's resets. reference_at(name, steps) -> the reference of a trace tensor
    at `steps` (float64, zeros at step -1), for the time-shift rule on traces.
    """
    if all(p.ok for p in pairs):
        return []
    return (diagnose_scale(pairs, sizes) + diagnose_sign(pairs) + diagnose_transpose(pairs)
            + diagnose_swap(pairs) + diagnose_time_shift(pairs, reset, reference_at)
            + diagnose_zero(pairs))
