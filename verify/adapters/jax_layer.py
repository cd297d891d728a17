"""The JAX eLSTM of verify.adapters.jax_elstm in the oracle's layer protocol (docs/oracle.md).

    layer(params, x, reset, c_0, g_c) -> {"c", "trace_*" (T, ...), "final_trace_*", "grad_*"}

c from its lax.scan forward pass, the gradients of sum_t <g_c[t], c_t> from its tensor-form RTRL
recursion. Needs JAX (optional extra oracle-jax); importing switches JAX to 64-bit mode.

    python -m verify.oracle fuzz verify.adapters.jax_layer:layer --max-examples 50
"""

from __future__ import annotations

import numpy as np

from verify.adapters.jax_elstm import TRACE_FIELDS, forward, jnp, rtrl


def layer(params, x, reset, c_0, g_c) -> dict:
    p = {f: jnp.asarray(params[f]) for f in TRACE_FIELDS}
    x, reset, c_0, g_c = jnp.asarray(x), jnp.asarray(reset), jnp.asarray(c_0), jnp.asarray(g_c)
    c = forward(p, x, reset, c_0)                                      # (T, B, H)
    one = jnp.ones((), x.dtype)
    S_all, S_T, G = rtrl(p, x, reset, c_0, g_c, one, one)
    out = {"c": c}
    out.update({f"trace_{f}": S_all[f] for f in TRACE_FIELDS})         # (T, B, H[, I])
    out.update({f"final_trace_{f}": S_T[f] for f in TRACE_FIELDS})
    out.update({f"grad_{f}": G[f] for f in TRACE_FIELDS})
    return {k: np.asarray(v) for k, v in out.items()}
