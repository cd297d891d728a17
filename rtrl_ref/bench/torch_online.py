"""The paper-style PyTorch formulation of one fully online step of the copy task (optional baseline).

The same math as `rtrl_ref.r2ac.copy_online.online_step`, written from docs/derivation.md the way a
direct PyTorch (eager, CPU) port does it: tensors in, new tensors out, the trace-sized temporaries
built at every step. Per step t of B rows:

    c_tm1 = 0 where reset_t                                          Eq. 10 (reset_t None: no reset)
    z, f, c_t = eLSTM cell (no autograd)                             Eqs. 1-3
    dc_dzpre, dc_dfpre, J = local partials, Jacobian; J *= keep       Eqs. 5-6, 10
    S^{W_z} = J[..., None] * S^{W_z} + bmm(dc_dzpre[..., None], x[:, None, :])   (B, H, I), Eq. 7
    S^{W_f} likewise; the four (B, H) vector traces                   Eq. 8
    h_t = o_t * c_t, logits = h_t W_y^T + b_y, L_t = cross_entropy(logits, y_t) summed over rows
    loss.backward() from a leaf copy of c_t: g_c = c_t.grad (Eq. 11) and the gradients of
        W_o, b_o, W_y, b_y by autograd (the paper's code does the same for the non-recurrent part)
    W_z.grad = (g_c[..., None] * S^{W_z}).sum(0), ...                 Eq. 9, (B, H, I) temporaries
    clip_grad_norm_(every parameter, clip); torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8).step()

The optimiser and the clip are PyTorch's own: `adam_update` and `clip_by_global_norm` of
rtrl_ref.r2ac.optim are written to match them (same betas and eps as `online_step` uses).
The step runs in the dtype of the CopyParams it is built from (float32 in the benchmark;
tests/test_torch_online.py compares it with `online_step` in float64).

torch is optional and never a dependency of the package: it is imported only inside the functions
and methods of this module, and the thread count is set by the caller (`threads=`).
"""

from __future__ import annotations

import numpy as np

from rtrl_ref.bench.torch_eager import available as available  # re-exported: torch found here?
from rtrl_ref.bench.torch_eager import version
from rtrl_ref.params import ELSTMParams, OutGateParams
from rtrl_ref.r2ac.copy_online import CopyParams
from rtrl_ref.r2ac.layers import LinearParams

BETAS = (0.9, 0.999)          # adam_update's defaults, which online_step uses
EPS = 1e-8


def torch_version() -> str | None:
    """torch.__version__, or None without torch."""
    return version()


class TorchOnlineStep:
    """One online RTRL step of the copy-task model per `step` call, in eager PyTorch on the CPU.

    Holds the parameters (leaf tensors), torch.optim.Adam's state, the cell c (B, H) and the six
    traces; built from a CopyParams (copied in; its dtype is the step's dtype). `threads`: if given,
    torch.set_num_threads(threads) (process-wide). `jacobian_decay=False` is a deliberately wrong
    variant for the tests' negative twin: the traces are not multiplied by J_t (S_t = S_tm1 + local).
    """

    def __init__(self, params: CopyParams, batch: int, lr: float = 3e-3, clip: float = 1.0,
                 threads: int | None = None, jacobian_decay: bool = True):
        import torch

        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
            torch.set_num_threads(threads)
        dtype = np.dtype(params.elstm.W_z.dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"params: expected float32 or float64, got {dtype}")
        self.np_dtype = dtype
        self.dtype = torch.float32 if dtype == np.float32 else torch.float64
        self.batch, self.lr, self.clip, self.jacobian_decay = batch, lr, clip, jacobian_decay

        def leaf(a):
            return torch.tensor(np.asarray(a, dtype), dtype=self.dtype, requires_grad=True)

        self.elstm = [leaf(a) for a in params.elstm]                 # W_z, W_f, w_z, w_f, b_z, b_f
        self.gate = [leaf(a) for a in params.gate]                   # W_o (H, I + H), b_o (H,)
        self.readout = [leaf(a) for a in params.readout]             # W_y (3, H), b_y (3,)
        self.all = self.elstm + self.gate + self.readout
        self.opt = torch.optim.Adam(self.all, lr=lr, betas=BETAS, eps=EPS)
        H, I = params.elstm.W_z.shape
        self.c = torch.zeros(batch, H, dtype=self.dtype)                              # (B, H)
        self.S = [torch.zeros(batch, H, I, dtype=self.dtype), torch.zeros(batch, H, I, dtype=self.dtype)] + [
            torch.zeros(batch, H, dtype=self.dtype) for _ in range(4)]               # (B, H, I) x2, (B, H) x4
        self.loss = float("nan")

    def step(self, x_t, y_t, reset_t=None) -> float:
        """One online step on x_t (B, I) float, y_t (B,) int, reset_t (B,) bool or None (NumPy
        arrays). Updates the parameters, Adam, c and the traces; returns the step's loss."""
        import torch
        import torch.nn.functional as F

        x = torch.as_tensor(np.asarray(x_t), dtype=self.dtype)                      # (B, I)
        y = torch.as_tensor(np.asarray(y_t), dtype=torch.int64)                     # (B,)
        W_z, W_f, w_z, w_f, b_z, b_f = self.elstm
        W_o, b_o = self.gate
        W_y, b_y = self.readout
        with torch.no_grad():
            c_tm1 = self.c
            if reset_t is not None:
                reset = torch.as_tensor(np.asarray(reset_t, bool))[:, None]         # (B, 1)
                c_tm1 = torch.where(reset, torch.zeros((), dtype=self.dtype), c_tm1)
            z = torch.tanh(x @ W_z.t() + w_z * c_tm1 + b_z)                          # (B, H)
            f = torch.sigmoid(x @ W_f.t() + w_f * c_tm1 + b_f)                       # (B, H)
            c_t = f * c_tm1 + (1 - f) * z                                            # (B, H)
            dc_dzpre = (1 - f) * (1 - z * z)                                         # (B, H)
            dc_dfpre = (c_tm1 - z) * f * (1 - f)                                     # (B, H)
            if self.jacobian_decay:
                J = f + dc_dzpre * w_z + dc_dfpre * w_f                              # (B, H)
            else:
                J = torch.ones_like(f)                                               # the wrong variant
            if reset_t is not None:
                J = torch.where(reset, torch.zeros((), dtype=self.dtype), J)         # Jeff, Eq. 10
            S_Wz, S_Wf, s_wz, s_wf, s_bz, s_bf = self.S
            S_Wz = J[..., None] * S_Wz + torch.bmm(dc_dzpre[..., None], x[:, None, :])   # (B, H, I)
            S_Wf = J[..., None] * S_Wf + torch.bmm(dc_dfpre[..., None], x[:, None, :])   # (B, H, I)
            s_wz = J * s_wz + dc_dzpre * c_tm1                                       # (B, H)
            s_wf = J * s_wf + dc_dfpre * c_tm1
            s_bz = J * s_bz + dc_dzpre
            s_bf = J * s_bf + dc_dfpre
            self.S = [S_Wz, S_Wf, s_wz, s_wf, s_bz, s_bf]
            self.c = c_t
        # the output gate and the readout by autograd, from a leaf copy of c_t
        c_leaf = c_t.detach().requires_grad_(True)                                   # (B, H)
        o = torch.sigmoid(torch.cat([x, c_leaf], dim=-1) @ W_o.t() + b_o)            # (B, H)
        logits = (o * c_leaf) @ W_y.t() + b_y                                        # (B, 3)
        loss = F.cross_entropy(logits, y, reduction="sum")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            g_c = c_leaf.grad                                                        # (B, H) Eq. 11
            W_z.grad = (g_c[..., None] * S_Wz).sum(0)                                # (H, I), Eq. 9
            W_f.grad = (g_c[..., None] * S_Wf).sum(0)
            w_z.grad = (g_c * s_wz).sum(0)                                           # (H,)
            w_f.grad = (g_c * s_wf).sum(0)
            b_z.grad = (g_c * s_bz).sum(0)
            b_f.grad = (g_c * s_bf).sum(0)
        torch.nn.utils.clip_grad_norm_(self.all, self.clip)
        self.opt.step()
        self.loss = float(loss.detach())
        return self.loss

    def params(self) -> CopyParams:
        """The current parameters as a CopyParams of NumPy arrays (copies, in the params' dtype)."""
        def a(t):
            return t.detach().numpy().astype(self.np_dtype, copy=True)

        return CopyParams(ELSTMParams(*(a(t) for t in self.elstm)), OutGateParams(*(a(t) for t in self.gate)),
                          LinearParams(*(a(t) for t in self.readout)))
