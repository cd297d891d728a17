"""End-to-end core gradient: the rtrl learner over consecutive unrolls == full-history BPTT.

Parameters are frozen; episode resets fall inside unrolls; traces carried between unrolls are
non-zero. The loss at every step is the non-linear readout of verify.problem, so g_h depends on
h_t. The tbptt learner must equal the unroll-truncated reference and differ from the exact one.
Both run on every CPU backend (the learners call the library drivers with it).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.bptt import bptt, tbptt
from rtrl_ref.cell import cell_step
from rtrl_ref.kernels import available_backends
from rtrl_ref.out_gate import immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams
from rtrl_ref.r2ac.core import CORES, LEARNERS, get_core, get_learner, get_stem_grad, init_core
from rtrl_ref.unroll import elstm_forward
from verify.compare import assert_close, assert_fields_close, compare, compare_fields, tolerance
from verify.problem import readout_loss
from verify.strategies import ALL_RESETS, MAX_B, row_reset_mask, weighted

EXACT = tolerance("exact", np.float64)
CPU_BACKENDS = [name for name in available_backends() if name != "cupy"]   # numpy and, if installed, numba


def history(seed, n_unrolls, T, B, I, H):
    rng = np.random.default_rng(seed)
    params = init_core(rng, I, H, np.float64)
    params = params._replace(elstm=ELSTMParams(*(3 * a for a in params.elstm)))   # stronger memory
    N = n_unrolls * T + 1                                                  # + bootstrap step
    x = rng.standard_normal((N, B, I))                                     # (N, B, I)
    reset = rng.random((N, B)) < 0.1                                       # (N, B)
    reset[0] = True
    V = rng.standard_normal((H, 3))                                        # (H, 3)
    y = rng.integers(0, 3, (N, B))                                         # (N, B)
    return params, x, reset, V, y


def run_learner(name, stem_grad, params, x, reset, V, y, T, backend="numpy"):
    N, B, I = x.shape
    H = params.elstm.W_z.shape[0]
    learner = get_learner(name)
    state = learner.init_state(B, I, H, np.float64)
    total, g_x_all = None, []
    for k in range((N - 1) // T):
        sl = slice(k * T, k * T + T + 1)
        h, cache = learner.forward(params, x[sl], reset[sl], state, backend)
        _, g_h, _ = readout_loss(h[:T], V, y[sl][:T])
        back = learner.backward(get_stem_grad(stem_grad), params, cache, reset[sl], g_h, state, backend)
        state = back.state
        total = back.grads if total is None else type(back.grads)(
            *(type(a)(*(u + v for u, v in zip(a, b))) for a, b in zip(total, back.grads)))
        g_x_all.append(back.g_x)
    return total, np.concatenate(g_x_all), state


def reference(params, x, reset, V, y, truncate_k=None):
    c, traj = elstm_forward(params.elstm, x[:-1], reset[:-1])
    h, gate_cache = out_gate(params.gate, x[:-1], c)
    _, g_h, _ = readout_loss(h, V, y[:-1])
    g_c, g_x_gate, g_gate = immediate_g_c(g_h, gate_cache, params.gate)
    if truncate_k is None:
        back = bptt(params.elstm, traj, reset[:-1], g_c)
    else:
        back = tbptt(params.elstm, traj, reset[:-1], g_c, k=truncate_k, mode="unroll")
    return back.grads, g_gate, back.g_x + g_x_gate


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(seed=st.integers(0, 2**31 - 1), n_unrolls=st.integers(2, 4), T=st.integers(1, 6),
       B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 5))
@settings(max_examples=20)
def test_rtrl_learner_equals_full_history_bptt(backend, seed, n_unrolls, T, B, I, H):
    params, x, reset, V, y = history(seed, n_unrolls, T, B, I, H)
    grads, g_x, state = run_learner("rtrl", "tbptt", params, x, reset, V, y, T, backend)
    ref_elstm, ref_gate, _ = reference(params, x, reset, V, y)
    _, _, ref_g_x_trunc = reference(params, x, reset, V, y, truncate_k=T)
    label = f"backend={backend} T={T} unrolls={n_unrolls} B={B}"
    assert_fields_close(f"rtrl learner eLSTM grads vs full BPTT ({label})", grads.elstm, ref_elstm, EXACT)
    assert_fields_close(f"output gate grads ({label})", grads.gate, ref_gate, EXACT)
    # the stem gradient is truncated at unroll boundaries, as the paper does for the stem
    assert_close(f"stem gradient vs unroll-truncated BPTT ({label})", g_x, ref_g_x_trunc, EXACT)
    assert state.traces is not None


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(2, 5))
@settings(max_examples=10)
def test_tbptt_learner_equals_truncated_reference(backend, seed, T):
    params, x, reset, V, y = history(seed, 3, T, 2, 3, 4)
    grads, g_x, _ = run_learner("tbptt", "tbptt", params, x, reset, V, y, T, backend)
    trunc_elstm, trunc_gate, trunc_g_x = reference(params, x, reset, V, y, truncate_k=T)
    assert_fields_close("tbptt learner vs unroll-truncated BPTT", grads.elstm, trunc_elstm, EXACT)
    assert_close("tbptt learner stem gradient", g_x, trunc_g_x, EXACT)


def test_tbptt_learner_differs_from_exact_when_memory_crosses_unrolls():
    """Negative twin of the learner test: the truncated gradient is not the exact one."""
    params, x, reset, V, y = history(1, 4, 3, 2, 3, 4)
    reset[1:] = False
    grads, _, _ = run_learner("tbptt", "tbptt", params, x, reset, V, y, 3)
    exact, _, _ = reference(params, x, reset, V, y)
    rtrl, _, _ = run_learner("rtrl", "tbptt", params, x, reset, V, y, 3)
    assert_fields_close("rtrl vs exact (the twin's premise)", rtrl.elstm, exact, EXACT)
    assert not all(c.ok for c in compare_fields("tbptt vs exact", grads.elstm, exact, 1e-3))


def test_immediate_and_frozen_stem_gradients():
    params, x, reset, V, y = history(2, 2, 4, 2, 3, 4)
    _, g_x_tbptt, _ = run_learner("rtrl", "tbptt", params, x, reset, V, y, 4)
    grads_imm, g_x_imm, _ = run_learner("rtrl", "immediate", params, x, reset, V, y, 4)
    # immediate == window-1 truncation of the eLSTM path (plus the gate path)
    c, traj = elstm_forward(params.elstm, x[:-1], reset[:-1])
    h, gc = out_gate(params.gate, x[:-1], c)
    _, g_h, _ = readout_loss(h, V, y[:-1])
    g_c, g_x_gate, _ = immediate_g_c(g_h, gc, params.gate)
    one_step = tbptt(params.elstm, traj, reset[:-1], g_c, k=1, mode="window").g_x + g_x_gate
    assert_close("immediate stem gradient vs window-1 BPTT", g_x_imm, one_step, EXACT)
    assert not np.allclose(g_x_imm, g_x_tbptt)
    rtrl = get_learner("rtrl")
    h0, cache0 = rtrl.forward(params, x[:5], reset[:5], rtrl.init_state(2, 3, 4, np.float64))
    frozen = rtrl.backward(get_stem_grad("frozen"), params, cache0, reset[:5], np.ones((4, 2, 4)),
                           rtrl.init_state(2, 3, 4, np.float64))
    assert frozen.g_x is None and frozen.grads is not None


def test_learner_names_are_checked():
    with pytest.raises(ValueError, match="learner: expected one of"):
        get_learner("bptt")
    with pytest.raises(ValueError, match="stem_grad: expected one of"):
        get_stem_grad("full")


def test_core_layers_are_checked_and_only_rtrl_carries_traces():
    """get_core refuses a layer count that is not an integer >= 1 (bools included); every cell's
    rtrl learner starts with traces and its tbptt learner without (it never reads them)."""
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match=r"layers: expected an integer >= 1, got"):
            get_core("elstm", bad)
    for name in CORES:
        core = get_core(name)
        rtrl, tbptt = core.learners["rtrl"], core.learners["tbptt"]
        assert rtrl.init_state(2, 3, 4).traces is not None, name
        assert tbptt.init_state(2, 3, 4).traces is None, name


def test_registry_names_match_and_feedforward_passes_x_through():
    assert all(name == learner.name for name, learner in LEARNERS.items())
    params, x, reset, V, y = history(3, 1, 3, 2, 3, 4)
    ff = get_learner("feedforward")
    state = ff.init_state(2, 3, 4, np.float64)
    h, cache = ff.forward(params, x, reset, state)
    assert h is x and ff.out_features(3, 4) == 3
    g_h = np.ones((3, 2, 3))                                               # (T, B, I)
    assert ff.backward(get_stem_grad("tbptt"), params, cache, reset, g_h, state).g_x is g_h
    assert ff.backward(get_stem_grad("frozen"), params, cache, reset, g_h, state).g_x is None


# ----------------------------------------------------------------------------- acting vs learning

def act_over(learner, params, x, reset, c_0):
    """The acting path (`Learner.step`, as network.act uses it while stepping environments) over
    a history: h (N, B, .) and the last cell c (B, H)."""
    c, hs = c_0, []
    for x_t, reset_t in zip(x, reset):
        h_t, c = learner.step(params, x_t, reset_t, c)
        hs.append(h_t)
    return np.stack(hs), c


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name", sorted(LEARNERS))
@given(seed=st.integers(0, 2**31 - 1), N=weighted(1, 9, 4), B=weighted(1, MAX_B, 3), I=st.integers(1, 4),
       H=st.integers(1, 5), resets=st.sampled_from(ALL_RESETS))
@settings(max_examples=15)
def test_acting_step_equals_the_learners_forward_pass(backend, name, seed, N, B, I, H, resets):
    """Acting one step at a time from a carried cell gives the h (and the cell) of the learner's
    forward pass over the same history, resets included (per row, and at N = 1)."""
    rng = np.random.default_rng(seed)
    params, x, _, _, _ = history(seed, 1, 1, B, I, H)
    x = rng.standard_normal((N, B, I))                                     # (N, B, I)
    reset = row_reset_mask(rng, N, B, resets)                              # (N, B)
    learner = get_learner(name)
    state = learner.init_state(B, I, H, np.float64)
    state = state._replace(c=rng.standard_normal(state.c.shape))           # a cell carried in
    h_act, c_act = act_over(learner, params, x, reset, state.c)
    h_learn, cache = learner.forward(params, x, reset, state, backend)
    label = f"{name} backend={backend} N={N} B={B} resets={np.argwhere(reset).tolist()}"
    assert_close(f"acting h vs forward h ({label})", h_act, h_learn, EXACT)
    if cache is not None:
        assert_close(f"acting c vs forward c ({label})", c_act, cache.traj.c_t[-1], EXACT)


def test_acting_check_fails_when_a_reset_adds_instead_of_zeroing():
    """Negative twin: an acting step whose reset_c adds the keep mask (c + keep) must fail."""
    rng = np.random.default_rng(0)
    params, x, _, _, _ = history(0, 1, 4, 3, 2, 4)
    reset = row_reset_mask(rng, 5, 3, "one_row")                           # (5, 3)
    learner = get_learner("rtrl")
    c_0 = rng.standard_normal((3, 4))                                      # (B, H)

    def wrong_step(params, x_t, reset_t, c_tm1):
        c_t, _ = cell_step(params.elstm, x_t, c_tm1 + (~reset_t)[:, None])  # (B, H)
        return out_gate(params.gate, x_t, c_t)[0], c_t

    h_learn, _ = learner.forward(params, x, reset, learner.init_state(3, 2, 4, np.float64)._replace(c=c_0))
    h_wrong, _ = act_over(learner._replace(step=wrong_step), params, x, reset, c_0)
    assert not compare("acting h", h_wrong, h_learn, EXACT).ok
