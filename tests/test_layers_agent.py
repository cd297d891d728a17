"""The agent with L stacked eLSTM layers as its core (--layers L, cell elstm; rtrl_ref.r2ac.core.stacked_core).

Mirrors tests/test_cells_agent.py: with parameters frozen, over several consecutive unrolls of a real
environment (episode resets inside unrolls, cells and traces carried between them), the stack gradient the
`rtrl` learner accumulates equals full-history BPTT of the whole stack (the `tbptt` learner run over the
whole history as one unroll), heads too, and the stem gradient equals the `tbptt` learner's. Negative twin:
the same learner with its carried cross-layer traces dropped at every unroll boundary is not exact. Then:
acting one step at a time equals the learner's forward pass, the stem-gradient modes, the --layers checks,
and training, resuming and evaluating with two layers.
"""

import re

import numpy as np
import pytest
from test_cells_agent import (
    assert_tree_close,
    check_stem_gradient_modes,
    full_history_bptt,
    learner_grads,
    zero_state,
)
from test_learner_exact import collect as collect_history

import envs
from rtrl_ref.r2ac.config import build_parser, describe_config, make_config, read_config
from rtrl_ref.r2ac.core import StackedCoreParams, StackedTraces, get_core, get_learner, get_stem_grad
from rtrl_ref.r2ac.loop import train
from rtrl_ref.r2ac.network import AgentSpec, act, init_agent, unroll_forward
from rtrl_ref.r2ac.train import main as train_main
from verify.compare import compare, compare_fields, tolerance

EXACT = tolerance("exact", np.float64)
TINY = ["--num-envs", "4", "--unroll", "3", "--hidden", "6", "--features", "8",
        "--total-frames", "48", "--log-every", "1", "--no-progress"]


def make_spec(env, layers, learner="rtrl", stem_grad="tbptt"):
    """An mlp stem (so the stem gradient is checked too), F = 6, H = 5."""
    return AgentSpec(learner, stem_grad, "mlp", env.observation_shape, env.num_actions, 6, 5, 1.0, "numpy",
                     layers=layers)


def drop_cross(state):
    """The negative twin's carried state: the cross-layer traces S^{l,k}, k < l, zeroed."""
    cross = tuple(tuple(type(S)(*(np.zeros_like(a) for a in S)) for S in row) for row in state.traces.cross)
    return state._replace(traces=StackedTraces(state.traces.own, cross))


def history(layers, seed, n_steps, delay=3, B=3):
    rng = np.random.default_rng(seed)
    with envs.make(f"memory:cue?delay={delay}", num_envs=B, seed=seed) as env:
        spec = make_spec(env, layers)
        params = init_agent(rng, spec, np.float64)
        hist = collect_history(spec, params, env, rng, n_steps, zero_state(spec, "rtrl", B).c)
    return spec, params, hist


# ----------------------------------------------------------------------------- exact gradients

@pytest.mark.parametrize("layers, seed, T, n_unrolls", [(2, 0, 3, 4), (2, 11, 2, 5), (3, 4, 3, 3)])
def test_rtrl_learner_equals_full_history_bptt_of_the_stack(layers, seed, T, n_unrolls):
    spec, params, hist = history(layers, seed, n_unrolls * T)
    assert hist["reset"][1:].any(), "the history must contain episode resets"
    assert isinstance(params.core, StackedCoreParams) and len(params.core.elstm) == layers
    rtrl, state = learner_grads("rtrl", spec, params, hist, n_unrolls, T)
    full = full_history_bptt(spec, params, hist, n_unrolls, T)
    tbptt, _ = learner_grads("tbptt", spec, params, hist, n_unrolls, T)
    label = f"L={layers} seed={seed} T={T} unrolls={n_unrolls}"
    for l in range(layers):                                                # every layer's gradient is non-trivial
        assert np.any(full.core.elstm[l].W_z != 0), f"vacuous reference: layer {l + 1} W_z ({label})"
    assert_tree_close(f"core ({label})", rtrl.core, full.core, EXACT)
    assert_tree_close(f"heads ({label})", rtrl.heads, full.heads, EXACT)
    assert_tree_close(f"stem vs tbptt learner ({label})", rtrl.stem, tbptt.stem, EXACT)
    assert state.c.shape == (3, layers, spec.hidden)
    assert all(np.any(S.W_z != 0) for row in state.traces.cross for S in row), "cross traces never built"


def test_dropping_the_cross_layer_traces_is_not_exact():
    """Negative twin: the rtrl learner whose carried cross-layer traces are zeroed at each unroll boundary
    loses the history of the lower layers' influence on the top one; its lower-layer gradient must fail the
    check that the intact learner passes. Likewise the tbptt learner (memory crosses unroll boundaries)."""
    spec, params, hist = history(2, 3, 12, delay=6, B=2)
    full = full_history_bptt(spec, params, hist, 4, 3)
    rtrl, _ = learner_grads("rtrl", spec, params, hist, 4, 3)
    assert_tree_close("rtrl vs exact (the twin's premise)", rtrl.core, full.core, EXACT)
    dropped, _ = learner_grads("rtrl", spec, params, hist, 4, 3, carry=drop_cross)
    assert not all(c.ok for c in compare_fields("cross traces dropped: layer 1", dropped.core.elstm[0],
                                                full.core.elstm[0], 1e-3))
    assert_tree_close("cross traces dropped: the top layer's own traces are intact", dropped.core.elstm[1],
                      full.core.elstm[1], EXACT)
    tbptt, _ = learner_grads("tbptt", spec, params, hist, 4, 3)
    assert not all(c.ok for c in compare_fields("tbptt vs exact", tbptt.core, full.core, 1e-3))


@pytest.mark.parametrize("learner", ["rtrl", "tbptt"])
def test_stacked_stem_gradient_is_the_unroll_losss_input_gradient(learner):
    """An independent check of the stack's input gradient (the tests above compare learners that share
    it): with the tbptt stem gradient, g_x = d/dx of sum_t <g_h[t], h_t> over one unroll, the carried
    cell held fixed (per-row resets inside), by central differences of the forward pass."""
    rng = np.random.default_rng(2)
    T, B, I, H, L = 3, 2, 3, 4, 2
    core = get_core("elstm", L)
    params = core.init(rng, I, H, np.float64)
    x = rng.standard_normal((T + 1, B, I))                                   # (T + 1, B, I)
    reset = np.zeros((T + 1, B), bool)
    reset[2, 1] = True                                                       # row 1 resets, row 0 does not
    g_h = rng.standard_normal((T, B, H))                                     # (T, B, H)
    lrn = get_learner(learner, "elstm", L)
    c0 = rng.standard_normal(lrn.init_state(B, I, H, np.float64).c.shape)

    def state():
        return lrn.init_state(B, I, H, np.float64)._replace(c=c0.copy())

    def loss(x):
        h, _ = lrn.forward(params, x, reset, state())
        return float(np.sum(g_h * h[:T]))

    _, cache = lrn.forward(params, x, reset, state())
    g_x = lrn.backward(get_stem_grad("tbptt"), params, cache, reset, g_h, state()).g_x   # (T, B, I)
    fd, eps = np.zeros_like(g_x), 1e-6
    for idx in np.ndindex(*g_x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        fd[idx] = (loss(up) - loss(down)) / (2 * eps)
    assert compare(f"stacked stem gradient vs central differences ({learner})", g_x, fd, 1e-6).ok


@pytest.mark.parametrize("layers", [2, 3])
def test_immediate_and_frozen_stem_gradients(layers):
    check_stem_gradient_modes("elstm", layers)


# ----------------------------------------------------------------------------- acting vs learning

@pytest.mark.parametrize("learner", ["rtrl", "tbptt"])
def test_acting_step_equals_the_learners_forward_pass(learner):
    rng = np.random.default_rng(7)
    N, B, L = 7, 3, 2
    with envs.make("memory:cue?delay=3", num_envs=B, seed=7) as env:
        spec = make_spec(env, L, learner)
    params = init_agent(rng, spec, np.float64)
    obs = rng.standard_normal((N, B) + spec.obs_shape)                     # (N, B, 4)
    reward = rng.standard_normal((N, B))                                   # (N, B)
    reset = rng.random((N, B)) < 0.25                                      # (N, B)
    state = zero_state(spec, learner, B)
    state = state._replace(c=rng.standard_normal(state.c.shape))           # (B, L, H) cells carried in
    c, steps = state.c, []
    for t in range(N):
        logits, value, c = act(spec, params, obs[t], reward[t], reset[t], c)
        steps.append((logits, value))
    logits, values, cache = unroll_forward(spec, params, obs, reward, reset, state)
    assert compare("logits", np.stack([a for a, _ in steps]), logits, EXACT).ok
    assert compare("values", np.stack([v for _, v in steps]), values, EXACT).ok
    assert compare("cells", c, np.stack([traj.c_t[-1] for traj in cache.core.trajs], axis=1), EXACT).ok
    lower_zeroed = state.c.copy()
    lower_zeroed[:, 0] = 0                                                 # twin: layer 1's carried cell lost
    twin = act(spec, params, obs[0], reward[0], np.zeros(B, bool), lower_zeroed)[0]
    assert not compare("twin", twin, act(spec, params, obs[0], reward[0], np.zeros(B, bool), state.c)[0],
                       EXACT).ok


# ----------------------------------------------------------------------------- config, training and runs

def test_layers_flag_is_checked():
    assert "--layers" in build_parser().format_help()
    assert make_config(["--layers", "2"]).layers == 2 and make_config([]).layers == 1
    with pytest.raises(ValueError, match=r"^layers: expected an integer >= 1, got 0$"):
        make_config(["--layers", "0"])
    with pytest.raises(ValueError, match=r"^layers: expected 1 with cell lru \(only elstm layers stack\), got 2$"):
        make_config(["--layers", "2", "--cell", "lru"])
    with pytest.raises(ValueError, match="layers: expected 1 with cell mingru"):
        get_core("mingru", 2)
    assert get_core("elstm", 1) is get_core("elstm") and get_core("elstm", 3) is get_core("elstm", 3)


@pytest.mark.parametrize("learner", ["rtrl", "tbptt", "feedforward"])
def test_two_layers_train_with_each_learner(tmp_path, learner):
    config = make_config(TINY + ["--run-dir", str(tmp_path), "--env", "memory:cue?delay=2", "--layers", "2",
                                 "--learner", learner, "--stem", "mlp"])
    assert re.search(r"\n  layers +2\n", describe_config(config))
    summary = train(config)
    assert summary.frames == 48 and summary.updates == 4
    assert read_config(summary.run_dir).layers == 2


def test_cli_smoke_run_resume_and_evaluate(tmp_path, capsys):
    from rtrl_ref.r2ac.evaluate import evaluate_run

    assert train_main(["--env", "memory:cue?delay=4", "--layers", "2", "--hidden", "8", "--total-frames", "2000",
                       "--run-dir", str(tmp_path), "--run-name", "r", "--no-progress"]) == 0
    assert "2000 frames" in capsys.readouterr().out
    run = tmp_path / "r"
    with pytest.raises(ValueError, match=r"resume: options \['layers'\] differ"):
        make_config(["--resume", str(run), "--layers", "3"])
    assert evaluate_run(run, episodes=2, num_envs=2).episodes == 2
    assert train(make_config(["--resume", str(run), "--total-frames", "2064", "--no-progress"])).frames == 2064
