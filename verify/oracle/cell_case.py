"""The reference of cell cases (schema version 3): one cell of rtrl_ref.cells on a case's inputs.

    cell_inputs(case)          (cell, params, x, reset, s_0, g_s) of a cell case, complex where the
                               cell's state is (from the stored NAME_re, NAME_im)
    cell_outputs(...)          every output: s by rtrl_ref.cells.forward, the gradients of
                               sum_t <g_s[t], s_t> and d/ds_0 by rtrl_ref.cells.bptt, the traces by
                               the step form (rtrl_ref.cells.rtrl_step); the RTRL gradient must agree
    cell_traces_at(...)        the step form's traces at given steps (the checker's recomputation)
    split_complex, join_complex   a complex array NAME as NAME_re and NAME_im, and back
    draw_g_s                   the drawn immediate gradients of a case

verify.oracle.make builds and writes the cases (make_cell_case, CELL_GOLDEN).
"""

from __future__ import annotations

import numpy as np

from rtrl_ref import cells
from rtrl_ref.cells.indrnn import IndRNNParams
from rtrl_ref.cells.interface import add_grads
from rtrl_ref.cells.lru import LRUParams
from rtrl_ref.cells.mingru import MinGRUParams
from verify.compare import rel_error
from verify.oracle import schema
from verify.oracle.case import Case

CELL_PARAMS_TYPE = {"indrnn": IndRNNParams, "mingru": MinGRUParams, "lru": LRUParams}


def split_complex(name: str, a) -> dict:
    """{NAME: a} for a real array, {NAME_re: Re a, NAME_im: Im a} for a complex one."""
    if np.iscomplexobj(a):
        return {f"{name}_re": a.real, f"{name}_im": a.imag}
    return {name: a}


def join_complex(arrays: dict, name: str, complex_: bool):
    """The array NAME of `arrays`, put together from NAME_re and NAME_im if complex_."""
    if complex_:
        return arrays[f"{name}_re"] + 1j * arrays[f"{name}_im"]
    return arrays[name]


def cell_inputs(case: Case) -> tuple:
    """(cell, params, x, reset, s_0, g_s) of a cell case, in the case dtype (complex where the
    cell's state is)."""
    kind = case.kind
    cell = cells.get_cell(kind.cell)
    a = case.arrays
    p = CELL_PARAMS_TYPE[kind.cell](*(a[f] for f, _ in schema.CELL_PARAMS[kind.cell]))
    state = cell.zero_state(p, 1).dtype
    cplx = kind.cell in schema.COMPLEX_STATE
    s_0 = np.asarray(join_complex(a, "s_0", cplx), state)             # (B, H)
    g_s = np.asarray(join_complex(a, "g_s", cplx), state)             # (T, B, H)
    return cell, p, a["x"], a["reset"], s_0, g_s


def cell_traces(cell, p, x, reset, s_0) -> list:
    """The RTRL traces after every step (the step form, rtrl_ref.cells.rtrl_step), T NamedTuples."""
    s, traces, out = s_0, cell.zero_traces(p, x.shape[1]), []
    for t in range(x.shape[0]):
        s, traces, _ = cells.rtrl_step(cell, p, x[t], reset[t], s, traces)
        out.append(traces)
    return out


def cell_traces_at(cell, p, x, reset, s_0, steps) -> dict:
    """{"trace_P[_re|_im]": (M, B, H[, I])} of the step form at the M steps `steps`."""
    every = cell_traces(cell, p, x, reset, s_0)
    out = {}
    for f in p._fields:
        out.update(split_complex(f"trace_{f}", np.stack([getattr(every[t], f) for t in steps])))
    return out


def cell_outputs(cell, p, x, reset, s_0, g_s, trace_steps) -> dict:
    """Every output of a cell case, in the inputs' (real) dtype (the NumPy reference).

    s by rtrl_ref.cells.forward; the gradients of sum_t <g_s[t], s_t> and d/ds_0 by
    rtrl_ref.cells.bptt; traces by the step form. The RTRL gradient must agree with BPTT."""
    traj = cells.forward(cell, p, x, reset, s_0)                      # s (T, B, H)
    back = cells.bptt(cell, p, traj, reset, g_s)
    every = cell_traces(cell, p, x, reset, s_0)
    rtrl = None
    for t, traces in enumerate(every):
        rtrl = add_grads(rtrl, cell.grads_from_traces(g_s[t], traces))
    worst = max(rel_error(a, b) for a, b in zip(rtrl, back.grads))
    if worst > (1e-9 if x.dtype == np.float64 else 1e-3):
        raise RuntimeError(f"oracle: the reference RTRL and BPTT gradients of the {cell.name} disagree "
                           f"(rel {worst:.2e}); refusing to write a case")
    steps = np.asarray(trace_steps, np.int64)
    out = split_complex("s", traj.s)
    for f in p._fields:
        out.update(split_complex(f"trace_{f}", np.stack([getattr(every[t], f) for t in steps])))
    for f in p._fields:
        out.update(split_complex(f"final_trace_{f}", getattr(every[-1], f)))
    out.update({f"grad_{f}": g for f, g in zip(p._fields, back.grads)})
    out.update(split_complex("grad_s_0", back.g_s0))
    kind = schema.CELL_KINDS[cell.name]
    return {n: np.asarray(out[n], x.dtype, order="C") for n in kind.outputs}


def draw_g_s(seed: int, T: int, B: int, H: int, complex_: bool) -> np.ndarray:
    """(T, B, H) immediate gradients of a cell case, N(0, 1) per real part, from their own stream."""
    rng = np.random.default_rng([seed, 2])
    g = rng.standard_normal((T, B, H))                                # (T, B, H)
    return g + 1j * rng.standard_normal((T, B, H)) if complex_ else g
