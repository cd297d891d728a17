"""Plain NumPy IndRNN, minGRU and LRU with exact RTRL, in the oracle's cell protocol (docs/oracle.md).

Written as a user of the oracle would write it, without the project's reference functions
(rtrl_ref.cells): one step function per cell updates the state and the traces, S_t = J_t * S_tm1 +
D_t (docs/derivation.md, Eqs. 19-33), and the gradient is summed from the traces:

    indrnn(params, x, reset, s_0, g_s)   params: W (H, I), u, b (H,)
    mingru(params, x, reset, s_0, g_s)   params: W_z, W_h (H, I), b_z, b_h (H,)
    lru(params, x, reset, s_0, g_s)      params: nu, theta (H,), B_re, B_im (H, I); s_0, g_s complex

x (T, B, I), reset (T, B) bool, s_0 (B, H), g_s (T, B, H) the immediate gradients. Each returns
{"s": (T, B, H), "trace_P": (T, B, H[, I]) at every step, "final_trace_P", "grad_P": the gradient of
sum_t sum_b <g_s[t, b], s_t[b]> (Re(conj(g) s) for the LRU's complex state), "grad_s_0"}, with
complex arrays split into NAME_re and NAME_im as the case files store them. grad_s_0 is forward
mode too: the sensitivity of s_t to s_0 is the product of the J_t since the last reset.

`candidate(case, bug="none")` runs the cell a case names on the case's inputs (the protocol of
verify.oracle.check_callable); `bug=NAME` injects a mistake of BUGS, and verify.adapters.cell_buggy
exposes each as its own candidate:

    python -m verify.adapters.cell_numpy cell-lru-long-f64 --out result.npz [--bug lru_gamma_constant]
    python -m verify.oracle check cell-lru-long-f64 --candidate result.npz
    python -m verify.oracle check 'cell-*' --adapter verify.adapters.cell_numpy:candidate
"""

from __future__ import annotations

import numpy as np

PARAMS = {
    "indrnn": ("W", "u", "b"),
    "mingru": ("W_z", "W_h", "b_z", "b_h"),
    "lru": ("nu", "theta", "B_re", "B_im"),
}
COMPLEX = ("lru",)

BUGS = {
    "indrnn_J_is_u": "IndRNN: the traces decay with u instead of J_t = (1 - h_t^2) u (tanh' dropped)",
    "mingru_J_is_z": "minGRU: the traces decay with z_t instead of J_t = 1 - z_t",
    "lru_gamma_constant": "LRU: S^nu without dgamma_dnu u_t (gamma treated as a constant)",
    "no_trace_reset": "any cell: a reset zeroes the state but not the traces",
}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _indrnn_step(p, x_t, h_tm1, S, bug):
    """h_t = tanh(W x_t + u h_tm1 + b); returns (h_t, J_t, S_t)."""
    h_t = np.tanh(x_t @ p["W"].T + p["u"] * h_tm1 + p["b"])            # (B, H)
    d = 1 - h_t * h_t                                                 # (B, H) dh_t/dpre
    J = np.broadcast_to(p["u"], h_t.shape) if bug == "indrnn_J_is_u" else d * p["u"]   # (B, H)
    S_t = {"W": J[:, :, None] * S["W"] + d[:, :, None] * x_t[:, None, :],   # (B, H, I)
           "u": J * S["u"] + d * h_tm1,                               # (B, H)
           "b": J * S["b"] + d}                                       # (B, H)
    return h_t, d * p["u"], S_t


def _mingru_step(p, x_t, h_tm1, S, bug):
    """h_t = (1 - z_t) h_tm1 + z_t (W_h x_t + b_h), z_t = sigmoid(W_z x_t + b_z)."""
    z = _sigmoid(x_t @ p["W_z"].T + p["b_z"])                         # (B, H)
    htilde = x_t @ p["W_h"].T + p["b_h"]                              # (B, H)
    h_t = (1 - z) * h_tm1 + z * htilde                                # (B, H)
    dz = (htilde - h_tm1) * z * (1 - z)                               # (B, H) dh_t/dzpre
    J = z if bug == "mingru_J_is_z" else 1 - z                        # (B, H)
    S_t = {"W_z": J[:, :, None] * S["W_z"] + dz[:, :, None] * x_t[:, None, :],   # (B, H, I)
           "W_h": J[:, :, None] * S["W_h"] + z[:, :, None] * x_t[:, None, :],    # (B, H, I)
           "b_z": J * S["b_z"] + dz,                                  # (B, H)
           "b_h": J * S["b_h"] + z}                                   # (B, H)
    return h_t, 1 - z, S_t


def _lru_step(p, x_t, h_tm1, S, bug):
    """h_t = lam h_tm1 + gamma (B_re + i B_im) x_t, lam = exp(-exp(nu)) exp(i exp(theta))."""
    radius = np.exp(-np.exp(p["nu"]))                                 # (H,) |lam|
    phase = np.exp(p["theta"])                                        # (H,) arg(lam)
    lam = radius * (np.cos(phase) + 1j * np.sin(phase))               # (H,)
    gamma = np.sqrt(1 - radius * radius)                              # (H,)
    u_t = x_t @ p["B_re"].T + 1j * (x_t @ p["B_im"].T)                # (B, H)
    h_t = lam * h_tm1 + gamma * u_t                                   # (B, H)
    dlam_dnu = -np.exp(p["nu"]) * lam                                 # (H,)
    dgamma_dnu = 0.0 if bug == "lru_gamma_constant" else np.exp(p["nu"]) * radius * radius / gamma   # (H,)
    gx = gamma[None, :, None] * x_t[:, None, :]                       # (B, H, I)
    S_t = {"nu": lam * S["nu"] + dlam_dnu * h_tm1 + dgamma_dnu * u_t,         # (B, H)
           "theta": lam * S["theta"] + 1j * phase * lam * h_tm1,              # (B, H)
           "B_re": lam[None, :, None] * S["B_re"] + gx,                        # (B, H, I)
           "B_im": lam[None, :, None] * S["B_im"] + 1j * gx}                   # (B, H, I)
    return h_t, np.broadcast_to(lam, h_t.shape), S_t


STEPS = {"indrnn": _indrnn_step, "mingru": _mingru_step, "lru": _lru_step}


def run(name: str, params, x, reset, s_0, g_s, bug: str = "none") -> dict:
    """The cell `name` over the sequence, with RTRL; the outputs of the module docstring."""
    if bug != "none" and bug not in BUGS:
        raise ValueError(f"bug: expected 'none' or one of {sorted(BUGS)}, got {bug!r}")
    step, fields = STEPS[name], PARAMS[name]
    p = {f: np.asarray(params[f]) for f in fields}
    x, reset, s_0, g_s = np.asarray(x), np.asarray(reset, bool), np.asarray(s_0), np.asarray(g_s)
    T, B, _ = x.shape
    S = {f: np.zeros((B,) + p[f].shape, s_0.dtype) for f in fields}    # (B, H[, I])
    G = {f: np.zeros(p[f].shape, x.dtype) for f in fields}
    P = np.ones_like(s_0)                                             # (B, H) ds_t/ds_0, diagonal
    g_s0 = np.zeros_like(s_0)                                         # (B, H)
    states, S_all = [], {f: [] for f in fields}
    s = s_0                                                           # (B, H)
    for t in range(T):
        keep = ~reset[t]                                              # (B,)
        s = s * keep[:, None]
        P = P * keep[:, None]
        if bug != "no_trace_reset":
            S = {f: a * keep.reshape((B,) + (1,) * (a.ndim - 1)) for f, a in S.items()}
        s, J, S = step(p, x[t], s, S, bug)
        P = J * P
        g = g_s[t]                                                    # (B, H)
        for f in fields:
            gS = np.conj(g).reshape(g.shape + (1,) * (S[f].ndim - 2)) * S[f]
            G[f] += gS.real.sum(0)
            S_all[f].append(S[f])
        g_s0 += np.conj(P) * g                                        # <g, P a> = <conj(P) g, a>
        states.append(s)
    out = {}
    put(out, "s", np.stack(states))                                   # (T, B, H)
    for f in fields:
        put(out, f"trace_{f}", np.stack(S_all[f]))                    # (T, B, H[, I])
    for f in fields:
        put(out, f"final_trace_{f}", S[f])                            # (B, H[, I])
    out.update({f"grad_{f}": G[f] for f in fields})
    put(out, "grad_s_0", g_s0)                                        # (B, H)
    return out


def put(out: dict, name: str, a) -> None:
    """out[name] = a, or out[name_re], out[name_im] for a complex a (the case files' convention)."""
    if np.iscomplexobj(a):
        out[f"{name}_re"], out[f"{name}_im"] = a.real.copy(), a.imag.copy()
    else:
        out[name] = a


def indrnn(params, x, reset, s_0, g_s, bug: str = "none") -> dict:
    return run("indrnn", params, x, reset, s_0, g_s, bug)


def mingru(params, x, reset, s_0, g_s, bug: str = "none") -> dict:
    return run("mingru", params, x, reset, s_0, g_s, bug)


def lru(params, x, reset, s_0, g_s, bug: str = "none") -> dict:
    return run("lru", params, x, reset, s_0, g_s, bug)


def candidate(case, bug: str = "none") -> dict:
    """The outputs of the cell a cell case names (meta "cell"), on the case's inputs."""
    name = case.meta.get("cell")
    if name not in STEPS:
        raise ValueError(f"case {case.name}: expected a cell case of one of {tuple(STEPS)}, got cell {name!r}")
    a = case.arrays
    if name in COMPLEX:
        cdtype = np.result_type(a["x"].dtype, np.complex64)
        s_0 = (a["s_0_re"] + 1j * a["s_0_im"]).astype(cdtype)         # (B, H)
        g_s = (a["g_s_re"] + 1j * a["g_s_im"]).astype(cdtype)         # (T, B, H)
    else:
        s_0, g_s = a["s_0"], a["g_s"]
    return run(name, {f: a[f] for f in PARAMS[name]}, a["x"], a["reset"], s_0, g_s, bug)


def main(argv=None) -> int:
    import argparse
    import sys

    from verify.oracle.case import load_case
    from verify.oracle.io import MalformedInput, write_npz

    ap = argparse.ArgumentParser(prog="python -m verify.adapters.cell_numpy",
                                 description="Write a plain-NumPy candidate for an oracle cell case.")
    ap.add_argument("case", help="cell case (path or golden name, e.g. cell-lru-long-f64)")
    ap.add_argument("--out", required=True, help="candidate .npz to write")
    ap.add_argument("--bug", choices=("none", *BUGS), default="none", help="inject a known mistake")
    args = ap.parse_args(argv)
    try:
        case = load_case(args.case)
        out = candidate(case, args.bug)
    except (MalformedInput, ValueError) as e:
        print(f"malformed input: {e}", file=sys.stderr)
        return 2
    write_npz(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
