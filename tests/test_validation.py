"""Bad input gets a ValueError naming the argument, the expected and the actual value."""

import numpy as np
import pytest

from rtrl_ref import bptt, elstm_forward, init_elstm, rtrl_segment, rtrl_sequence, tbptt, zero_traces
from rtrl_ref.kernels import get_backend


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    p = init_elstm(rng, I=3, H=4, dtype=np.float64)
    x = rng.standard_normal((5, 2, 3))                      # (T, B, I)
    reset = np.zeros((5, 2), bool)                          # (T, B)
    c, traj = elstm_forward(p, x, reset)
    g_c = rng.standard_normal((5, 2, 4))                    # (T, B, H)
    return p, x, reset, traj, g_c


@pytest.mark.parametrize("bad_x, words", [
    (np.zeros((5, 2, 4)), ["x", "I=3", "(5, 2, 4)"]),
    (np.zeros((5, 3)), ["x", "(5, 3)"]),
    (np.zeros((5, 2, 3), np.float32), ["x", "float64", "float32"]),
    (np.full((5, 2, 3), np.nan), ["x", "NaN"]),
    (np.zeros((5, 2, 3), np.int64), ["x", "float64", "int64"]),
])
def test_forward_rejects_bad_x(setup, bad_x, words):
    p, x, reset, *_ = setup
    with pytest.raises(ValueError) as err:
        elstm_forward(p, bad_x, reset[:, : bad_x.shape[1]] if bad_x.ndim == 3 else reset)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_forward_rejects_bad_reset_and_c0(setup):
    p, x, reset, *_ = setup
    with pytest.raises(ValueError, match=r"reset: expected shape \(T=5, B=2\), got \(5, 3\)"):
        elstm_forward(p, x, np.zeros((5, 3), bool))
    with pytest.raises(ValueError, match="reset: expected dtype bool, got float64"):
        elstm_forward(p, x, np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"c_0: expected shape \(B=2, H=4\), got \(3, 4\)"):
        elstm_forward(p, x, reset, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="x: expected T >= 1"):
        elstm_forward(p, x[:0], reset[:0])


def test_params_are_checked(setup):
    p, x, reset, *_ = setup
    with pytest.raises(ValueError, match=r"params.w_f: expected shape \(H=4\), got \(3,\)"):
        elstm_forward(p._replace(w_f=np.zeros(3)), x, reset)
    with pytest.raises(ValueError, match="params.b_z: expected dtype float64, got float32"):
        elstm_forward(p._replace(b_z=np.zeros(4, np.float32)), x, reset)
    with pytest.raises(ValueError, match="init_elstm: expected I >= 1 and H >= 1"):
        init_elstm(np.random.default_rng(0), I=0, H=4)


def test_gradients_reject_bad_upstream_and_traces(setup):
    p, x, reset, traj, g_c = setup
    with pytest.raises(ValueError, match=r"g_c: expected shape \(T=5, B=2, H=4\), got \(5, 2, 3\)"):
        bptt(p, traj, reset, g_c[..., :3])
    with pytest.raises(ValueError, match="g_c: expected dtype float64, got float32"):
        rtrl_sequence(traj, reset, g_c.astype(np.float32))
    with pytest.raises(ValueError, match="g_c: expected finite values"):
        rtrl_segment(p, traj, reset, np.full_like(g_c, np.inf))
    bad = zero_traces(3, 4, 3, np.float64)
    with pytest.raises(ValueError, match=r"traces.W_z: expected shape \(B=2, H=4, I=3\), got \(3, 4, 3\)"):
        rtrl_segment(p, traj, reset, g_c, bad)
    with pytest.raises(ValueError, match="traces: expected a Traces container, got tuple"):
        rtrl_sequence(traj, reset, g_c, tuple(zero_traces(2, 4, 3, np.float64)))
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        tbptt(p, traj, reset, g_c, k=0)
    with pytest.raises(ValueError, match="mode: expected 'window' or 'unroll', got 'sliding'"):
        tbptt(p, traj, reset, g_c, k=2, mode="sliding")


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"backend: expected one of \('numpy', 'numba', 'cupy'\), got 'torch'"):
        get_backend("torch")
