"""The oracle case schema (version 1): which arrays a case holds, their shapes, and checksums.

A case is two files beside each other:

    NAME.npz    NumPy arrays only (read with allow_pickle=False): inputs and reference outputs
    NAME.json   metadata: schema name and version, sizes, dtype, how it was generated, the loss,
                the tolerances, and for every array its dtype, shape and SHA-256

The human-readable description of every field is docs/oracle.md; this module is its executable
form. Shapes use the package alphabet plus K (readout classes) and N (number of stored trace
steps, `trace_steps`); "I+H" is the output gate's input width.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

SCHEMA = "rtrl_ref-oracle-case"
SCHEMA_VERSION = 1

FLOAT, BOOL, INT = "float", "bool", "int"
ELSTM_FIELDS = ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")
TRACE_DIMS = {"W_z": ("B", "H", "I"), "W_f": ("B", "H", "I"),
              "w_z": ("B", "H"), "w_f": ("B", "H"), "b_z": ("B", "H"), "b_f": ("B", "H")}
PARAM_DIMS = {"W_z": ("H", "I"), "W_f": ("H", "I"), "w_z": ("H",), "w_f": ("H",),
              "b_z": ("H",), "b_f": ("H",), "W_o": ("H", "I+H"), "b_o": ("H",), "V": ("H", "K")}


class ArraySpec(NamedTuple):
    name: str
    dims: tuple          # dimension symbols, e.g. ("T", "B", "H")
    kind: str            # FLOAT, BOOL or INT
    role: str            # "input" or "output"
    group: str           # tolerance group of an output: forward, immediate, traces, grads
    required: bool       # a candidate must provide it (outputs only)

    @property
    def per_step(self) -> bool:
        """Leading axis is time (T) or stored trace steps (N)."""
        return bool(self.dims) and self.dims[0] in ("T", "N")


def _specs() -> tuple[ArraySpec, ...]:
    s = []
    for name, dims in PARAM_DIMS.items():
        s.append(ArraySpec(name, dims, FLOAT, "input", "", False))
    s += [
        ArraySpec("x", ("T", "B", "I"), FLOAT, "input", "", False),
        ArraySpec("reset", ("T", "B"), BOOL, "input", "", False),
        ArraySpec("c_0", ("B", "H"), FLOAT, "input", "", False),
        ArraySpec("y", ("T", "B"), INT, "input", "", False),
        ArraySpec("trace_steps", ("N",), INT, "input", "", False),
        ArraySpec("c", ("T", "B", "H"), FLOAT, "output", "forward", True),
        ArraySpec("h", ("T", "B", "H"), FLOAT, "output", "forward", True),
        ArraySpec("loss", (), FLOAT, "output", "forward", True),
        ArraySpec("g_c", ("T", "B", "H"), FLOAT, "output", "immediate", False),
    ]
    for f in ELSTM_FIELDS:
        s.append(ArraySpec(f"trace_{f}", ("N",) + TRACE_DIMS[f], FLOAT, "output", "traces", False))
    for f in ELSTM_FIELDS:
        s.append(ArraySpec(f"final_trace_{f}", TRACE_DIMS[f], FLOAT, "output", "traces", False))
    for name, dims in PARAM_DIMS.items():
        s.append(ArraySpec(f"grad_{name}", dims, FLOAT, "output", "grads", name in ELSTM_FIELDS))
    s += [
        ArraySpec("grad_x", ("T", "B", "I"), FLOAT, "output", "grads", False),
        ArraySpec("grad_c_0", ("B", "H"), FLOAT, "output", "grads", False),
    ]
    return tuple(s)


SPECS: tuple[ArraySpec, ...] = _specs()
BY_NAME = {s.name: s for s in SPECS}
INPUTS = tuple(s.name for s in SPECS if s.role == "input")
OUTPUTS = tuple(s.name for s in SPECS if s.role == "output")
REQUIRED = tuple(s.name for s in SPECS if s.required)
GROUPS = ("forward", "immediate", "traces", "grads")

# Default tolerances on the norm-wise relative error (verify.compare.rel_error) of a candidate
# against the reference, by case dtype. Float32 references are computed in float64 from the
# float32 inputs and rounded, so a float32 candidate carries its own round-off only.
DEFAULT_TOLERANCE = {
    "float64": {"forward": 1e-10, "immediate": 1e-10, "traces": 1e-10, "grads": 1e-10},
    "float32": {"forward": 1e-4, "immediate": 1e-4, "traces": 2e-4, "grads": 2e-4},
}

LOSS = {
    "name": "readout_cross_entropy",
    "formula": "L = sum_{t,b} -log softmax(h[t,b] @ V)[y[t,b]]",
    "immediate_gradient": "g_c[t,b] = dL/dc[t,b] through o_t and h_t at step t only "
                          "(not through the recurrence)",
}

CONVENTIONS = {
    "cell": "z_t = tanh(W_z x_t + w_z*c_tm1 + b_z); f_t = sigmoid(W_f x_t + w_f*c_tm1 + b_f); "
            "c_t = f_t*c_tm1 + (1-f_t)*z_t",
    "output_gate": "o_t = sigmoid(W_o [x_t; c_t] + b_o); h_t = o_t*c_t (no tanh)",
    "reset": "reset[t,b] True: c_tm1 and every trace of batch row b are zeroed before step t",
    "c_0": "initial cell, a constant (its traces are zero); grad_c_0 is dL/dc_0 before the "
           "reset mask of step 0",
    "traces": "trace_P[n] = dc_t/dP at t = trace_steps[n], after that step's reset and update; "
              "only unit h's own row is kept: trace_W_z[n,b,h,i] = dc_t[b,h]/dW_z[h,i]",
    "gradients": "grad_P = dL/dP summed over t and b (BPTT through the whole sequence; "
                 "equals sum_t sum_b g_c[t,b] * trace_P[t,b])",
}


def dim_sizes(sizes: dict) -> dict:
    """Map every dimension symbol to its size, given T, B, I, H, K, N."""
    return dict(sizes, **{"I+H": sizes["I"] + sizes["H"]})


def expected_shape(spec: ArraySpec, sizes: dict) -> tuple:
    d = dim_sizes(sizes)
    return tuple(d[k] for k in spec.dims)


def shape_label(spec: ArraySpec, sizes: dict) -> str:
    d = dim_sizes(sizes)
    return "(" + ", ".join(f"{k}={d[k]}" for k in spec.dims) + ")"


def checksum(a: np.ndarray) -> str:
    """SHA-256 of the array's dtype, shape and C-order bytes."""
    a = np.asarray(a, order="C")
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def array_entry(name: str, a: np.ndarray) -> dict:
    return {"role": BY_NAME[name].role, "dtype": a.dtype.str, "shape": list(a.shape),
            "sha256": checksum(a)}
