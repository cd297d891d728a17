"""Example adapters: eLSTM implementations in other frameworks that write oracle candidates.

They are independent of the NumPy reference: the forward pass is the framework's own code, the
BPTT gradients come from the framework's autograd, and the RTRL recursion is re-written in that
framework's tensor form. Each can inject a known bug (`BUGS`) to show what the checker reports.

    jax_elstm     JAX (jax.grad, lax.scan)          optional extra: oracle-jax
    torch_elstm   PyTorch (torch.autograd)          optional: torch (CPU wheel is enough)

    python -m verify.adapters.jax_elstm CASE --out RESULT.npz [--method rtrl|bptt] [--bug NAME]
"""

BUGS = ("none", "no_wz_term", "no_trace_reset")
METHODS = ("rtrl", "bptt")
