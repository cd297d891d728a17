"""Backend interface: the same two trace operations for NumPy, Numba and CuPy.

Each backend module provides
    trace_step_accumulate(traces, cache, reset_t, g_c_t, grads) -> (traces_t, grads)
    segment_carried_pass(traces_in, coef_in, decay_in, u_z, u_f, x, c_tm1) -> (grads, traces_out)
with the contracts of the NumPy references in `rtrl_ref.rtrl`. Everything else is plain array
code that runs on any array module.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

BACKENDS = ("numpy", "numba", "cupy")

_loaded: dict[str, SimpleNamespace] = {}


def get_backend(name: str) -> SimpleNamespace:
    """Backend by name; raises ValueError for an unknown one, ImportError if unavailable."""
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
    if name not in _loaded:
        if name == "numpy":
            from rtrl_ref import rtrl

            _loaded[name] = SimpleNamespace(
                name="numpy",
                trace_step_accumulate=rtrl.trace_step_accumulate,
                segment_carried_pass=rtrl.segment_carried_pass,
            )
        else:
            module = importlib.import_module(f"rtrl_ref.kernels.{name}_backend")
            _loaded[name] = module.backend()
    return _loaded[name]


def available_backends() -> list[str]:
    """Backends that load and can run here (cupy only with a working GPU)."""
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except (ImportError, RuntimeError):
            continue
        names.append(name)
    return names
