"""The PyTorch eLSTM of verify.adapters.torch_elstm in the oracle's layer protocol (docs/oracle.md).

    layer(params, x, reset, c_0, g_c) -> {"c", "trace_*" (T, ...), "final_trace_*", "grad_*"}

c from its step loop, the gradients of sum_t <g_c[t], c_t> from its tensor-form RTRL recursion.
Needs PyTorch (a CPU build is enough; optional extra oracle-torch).

    python -m verify.oracle fuzz verify.adapters.torch_layer:layer --max-examples 50
"""

from __future__ import annotations

import numpy as np
import torch

from verify.adapters.torch_elstm import TRACE_FIELDS, forward, rtrl


def layer(params, x, reset, c_0, g_c) -> dict:
    p = {f: torch.from_numpy(np.array(params[f])) for f in TRACE_FIELDS}
    x, c_0, g_c = (torch.from_numpy(np.array(a)) for a in (x, c_0, g_c))
    reset = torch.from_numpy(np.array(reset, bool))
    with torch.no_grad():
        c = forward(p, x, reset, c_0)                                  # (T, B, H)
        S_all, S_T, G = rtrl(p, x, reset, c_0, g_c)
    out = {"c": c}
    out.update({f"trace_{f}": S_all[f] for f in TRACE_FIELDS})         # (T, B, H[, I])
    out.update({f"final_trace_{f}": S_T[f] for f in TRACE_FIELDS})
    out.update({f"grad_{f}": G[f] for f in TRACE_FIELDS})
    return {k: v.numpy() for k, v in out.items()}
