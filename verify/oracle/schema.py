"""The oracle case schemas: which arrays a case holds, their shapes, and checksums.

Three kinds of case (`Kind`):

    MODEL  schema version 1: the eLSTM with an output gate, a readout and a loss; the candidate
           gives c, h, the loss and the gradients (the module constants SPECS, BY_NAME, ...)
    LAYER  schema version 2, "kind": "layer": the recurrent layer alone; the inputs include the
           immediate gradients g_c, the candidate gives c, optionally traces, and the six eLSTM
           gradients of sum_t <g_c[t], c_t> through the recurrence
    CELL   schema version 3, "kind": "cell", "cell": NAME: one cell of rtrl_ref.cells (IndRNN,
           minGRU, LRU) alone, as a layer case: given g_s, the candidate gives the states s, the
           gradient of every parameter of sum_t <g_s[t], s_t>, optionally traces (`CELL_KINDS`,
           one Kind per cell). A complex array NAME (the LRU's state, its g_s, its traces) is
           stored as two real arrays NAME_re and NAME_im

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

from verify.compare import tolerance

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


# --------------------------------------------------------------------------------------------
# Layer-level cases (schema version 2): the recurrent layer's own contract

LAYER_SCHEMA_VERSION = 2
LAYER_GROUPS = ("forward", "traces", "grads")


def _layer_specs() -> tuple[ArraySpec, ...]:
    s = [ArraySpec(f, PARAM_DIMS[f], FLOAT, "input", "", False) for f in ELSTM_FIELDS]
    s += [
        ArraySpec("x", ("T", "B", "I"), FLOAT, "input", "", False),
        ArraySpec("reset", ("T", "B"), BOOL, "input", "", False),
        ArraySpec("c_0", ("B", "H"), FLOAT, "input", "", False),
        ArraySpec("g_c", ("T", "B", "H"), FLOAT, "input", "", False),
        ArraySpec("trace_steps", ("N",), INT, "input", "", False),
        ArraySpec("c", ("T", "B", "H"), FLOAT, "output", "forward", True),
    ]
    for f in ELSTM_FIELDS:
        s.append(ArraySpec(f"trace_{f}", ("N",) + TRACE_DIMS[f], FLOAT, "output", "traces", False))
    for f in ELSTM_FIELDS:
        s.append(ArraySpec(f"final_trace_{f}", TRACE_DIMS[f], FLOAT, "output", "traces", False))
    for f in ELSTM_FIELDS:
        s.append(ArraySpec(f"grad_{f}", PARAM_DIMS[f], FLOAT, "output", "grads", True))
    s += [
        ArraySpec("grad_x", ("T", "B", "I"), FLOAT, "output", "grads", False),
        ArraySpec("grad_c_0", ("B", "H"), FLOAT, "output", "grads", False),
    ]
    return tuple(s)


LAYER_SPECS: tuple[ArraySpec, ...] = _layer_specs()

# A float32 layer candidate is a float32 computation judged against the float64 reference: its
# traces and gradients carry float32 round-off amplified by saturated gates (1 - z_t^2 of a
# saturated z_t), so they get the project's float32-vs-float64 tolerance (verify.compare).
LAYER_TOLERANCE = {
    "float64": {"forward": 1e-10, "traces": 1e-10, "grads": 1e-10},
    "float32": {"forward": 1e-4, "traces": tolerance("vs_float64", "float32"),
                "grads": tolerance("vs_float64", "float32")},
}

LAYER_CONVENTIONS = {
    "cell": CONVENTIONS["cell"],
    "reset": CONVENTIONS["reset"],
    "c_0": "initial cell, a constant (its traces are zero); grad_c_0 is d/dc_0 before the reset "
           "mask of step 0",
    "g_c": "immediate gradients dL/dc_t from outside the recurrence (an input of the case); the "
           "layer's objective is L = sum_t sum_b <g_c[t,b], c_t[b]>",
    "traces": CONVENTIONS["traces"],
    "gradients": "grad_P = dL/dP of L = sum_t sum_b <g_c[t,b], c_t[b]> through the recurrence "
                 "(BPTT; equals sum_t sum_b g_c[t,b] * trace_P[t,b]); grad_x = dL/dx",
}

# Layer cases: besides the relative tolerance, traces and gradients get an absolute allowance of
# LAYER_FLOOR_ULPS units of round-off of the dtype times their natural size (check.layer_floors):
# max(1, max|x|) for a trace, times max_h sum_t sum_b |g_c[t, b, h]| for a gradient. A trace of a
# saturated gate is tiny (1 - z_t^2) and its relative error large in any precision; the allowance
# keeps such round-off from failing a correct layer, while any real mistake is far above it.
LAYER_FLOOR_ULPS = 1000.0


class Kind(NamedTuple):
    """One kind of case: its schema version, arrays, size symbols and tolerances."""

    name: str               # "model" (schema version 1) or "layer" (schema version 2)
    version: int
    specs: tuple
    groups: tuple
    size_keys: tuple
    tolerance: dict         # dtype name -> {group: tol}
    conventions: dict
    floor_ulps: float       # absolute floor of traces and grads in units of round-off (0: none)
    cell: str = ""          # cell cases: the cell's name in rtrl_ref.cells
    upstream: tuple = ("g_c",)   # the immediate-gradient inputs (their size scales the grads' floor)

    @property
    def by_name(self) -> dict:
        return {s.name: s for s in self.specs}

    @property
    def inputs(self) -> tuple:
        return tuple(s.name for s in self.specs if s.role == "input")

    @property
    def outputs(self) -> tuple:
        return tuple(s.name for s in self.specs if s.role == "output")

    @property
    def required(self) -> tuple:
        return tuple(s.name for s in self.specs if s.required)


MODEL = Kind("model", SCHEMA_VERSION, SPECS, GROUPS, ("T", "B", "I", "H", "K", "N"), DEFAULT_TOLERANCE,
             CONVENTIONS, 0.0)
LAYER = Kind("layer", LAYER_SCHEMA_VERSION, LAYER_SPECS, LAYER_GROUPS, ("T", "B", "I", "H", "N"),
             LAYER_TOLERANCE, LAYER_CONVENTIONS, LAYER_FLOOR_ULPS)
KINDS = {"model": MODEL, "layer": LAYER}


# --------------------------------------------------------------------------------------------
# Cell cases (schema version 3): one cell of rtrl_ref.cells alone (docs/derivation.md, section 10)

CELL_SCHEMA_VERSION = 3
CELL_PARAMS = {             # each cell's parameters, in the order of its params NamedTuple
    "indrnn": (("W", ("H", "I")), ("u", ("H",)), ("b", ("H",))),
    "mingru": (("W_z", ("H", "I")), ("W_h", ("H", "I")), ("b_z", ("H",)), ("b_h", ("H",))),
    "lru": (("nu", ("H",)), ("theta", ("H",)), ("B_re", ("H", "I")), ("B_im", ("H", "I"))),
}
COMPLEX_STATE = ("lru",)    # cells whose state (and so g_s and every trace) is complex
CELL_EQUATIONS = {
    "indrnn": "h_t = tanh(W x_t + u*h_tm1 + b)",
    "mingru": "z_t = sigmoid(W_z x_t + b_z); htilde_t = W_h x_t + b_h; h_t = (1-z_t)*h_tm1 + z_t*htilde_t",
    "lru": "lam = exp(-exp(nu) + i exp(theta)); gamma = sqrt(1 - |lam|^2); "
           "h_t = lam*h_tm1 + gamma*(B_re + i B_im) x_t (complex)",
}


def parts(name: str, complex_: bool) -> tuple:
    """The stored names of array `name`: NAME_re and NAME_im if it is complex, else NAME."""
    return (f"{name}_re", f"{name}_im") if complex_ else (name,)


def _cell_specs(cell: str) -> tuple[ArraySpec, ...]:
    cplx = cell in COMPLEX_STATE
    fields = CELL_PARAMS[cell]
    s = [ArraySpec(f, dims, FLOAT, "input", "", False) for f, dims in fields]
    s += [ArraySpec("x", ("T", "B", "I"), FLOAT, "input", "", False),
          ArraySpec("reset", ("T", "B"), BOOL, "input", "", False)]
    s += [ArraySpec(n, ("B", "H"), FLOAT, "input", "", False) for n in parts("s_0", cplx)]
    s += [ArraySpec(n, ("T", "B", "H"), FLOAT, "input", "", False) for n in parts("g_s", cplx)]
    s += [ArraySpec("trace_steps", ("N",), INT, "input", "", False)]
    s += [ArraySpec(n, ("T", "B", "H"), FLOAT, "output", "forward", True) for n in parts("s", cplx)]
    for f, dims in fields:
        s += [ArraySpec(n, ("N", "B") + dims, FLOAT, "output", "traces", False)
              for n in parts(f"trace_{f}", cplx)]
    for f, dims in fields:
        s += [ArraySpec(n, ("B",) + dims, FLOAT, "output", "traces", False)
              for n in parts(f"final_trace_{f}", cplx)]
    s += [ArraySpec(f"grad_{f}", dims, FLOAT, "output", "grads", True) for f, dims in fields]
    s += [ArraySpec(n, ("B", "H"), FLOAT, "output", "grads", False) for n in parts("grad_s_0", cplx)]
    return tuple(s)


def cell_conventions(cell: str) -> dict:
    out = {
        "cell": CELL_EQUATIONS[cell],
        "reset": "reset[t,b] True: s_tm1 and every trace of batch row b are zeroed before step t",
        "s_0": "initial state, a constant (its traces are zero); grad_s_0 is d/ds_0 before the reset "
               "mask of step 0",
        "g_s": "immediate gradients dL/ds_t from outside the recurrence (an input of the case); the "
               "cell's objective is L = sum_t sum_b <g_s[t,b], s_t[b]>",
        "traces": "trace_P[n] = ds_t/dP at t = trace_steps[n], after that step's reset and update; "
                  "only unit h's own row is kept: trace_W[n,b,h,i] = ds_t[b,h]/dW[h,i]",
        "gradients": "grad_P = dL/dP of L = sum_t sum_b <g_s[t,b], s_t[b]> through the recurrence "
                     "(BPTT; equals sum_t sum_b <g_s[t,b], trace_P[t,b]>)",
    }
    if cell in COMPLEX_STATE:
        out["complex"] = ("the state is complex; a complex array NAME is stored as NAME_re and NAME_im; "
                          "g_s = dL/dRe(s) + i dL/dIm(s), trace_P = dRe(s)/dP + i dIm(s)/dP, "
                          "<g, a> = Re(conj(g) a); the parameters are real")
    return out


def _cell_kind(cell: str) -> Kind:
    return Kind(f"cell-{cell}", CELL_SCHEMA_VERSION, _cell_specs(cell), LAYER_GROUPS,
                ("T", "B", "I", "H", "N"), LAYER_TOLERANCE, cell_conventions(cell), LAYER_FLOOR_ULPS,
                cell, parts("g_s", cell in COMPLEX_STATE))


CELL_KINDS = {cell: _cell_kind(cell) for cell in CELL_PARAMS}
KINDS.update({k.name: k for k in CELL_KINDS.values()})


def kind_of(meta: dict) -> Kind | None:
    """The kind of a case from its metadata: version 1 is a model case, versions 2 and 3 name
    their kind (and a cell case its cell)."""
    version = meta.get("schema_version")
    if version == SCHEMA_VERSION and meta.get("kind", "model") == "model":
        return MODEL
    if version == LAYER_SCHEMA_VERSION and meta.get("kind") == "layer":
        return LAYER
    if version == CELL_SCHEMA_VERSION and meta.get("kind") == "cell":
        return CELL_KINDS.get(meta.get("cell"))
    return None


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


def array_entry(name: str, a: np.ndarray, kind: Kind | None = None) -> dict:
    by_name = BY_NAME if kind is None else kind.by_name
    return {"role": by_name[name].role, "dtype": a.dtype.str, "shape": list(a.shape),
            "sha256": checksum(a)}
