"""The agent with a cell of rtrl_ref.cells as its core (--cell indrnn|mingru|lru), for every learner.

Mirrors tests/test_learner_exact.py: with parameters frozen, over several consecutive unrolls of a
real environment (episode resets inside unrolls, state and traces carried between them), the cell
gradient the `rtrl` learner accumulates equals full BPTT of the same summed loss over the whole
history; heads agree too; the stem gradient equals the `tbptt` learner's (in-unroll BPTT). The
`tbptt` learner's cell gradient differs from the exact one when memory crosses unroll boundaries.
Then: acting one step at a time equals the learner's forward pass, every cell trains with every
learner, and a run's cell is part of what resume checks (an old config.json without it is an eLSTM run).
"""

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_learner_exact import collect as collect_history
from test_learner_exact import loss_grads

import envs
from rtrl_ref.cells import CELLS
from rtrl_ref.r2ac.config import build_parser, describe_config, make_config, read_config
from rtrl_ref.r2ac.core import CELL_STEM_GRADS, CORES, LEARNERS, STEM_GRADS, get_core, get_learner, get_stem_grad
from rtrl_ref.r2ac.loop import train
from rtrl_ref.r2ac.network import AgentSpec, act, init_agent, unroll_backward, unroll_forward
from rtrl_ref.r2ac.tree import tree_leaves, tree_map
from verify.compare import compare, compare_fields, tolerance

EXACT = tolerance("exact", np.float64)
NEW_CELLS = sorted(CELLS)                       # indrnn, lru, mingru
TINY = ["--num-envs", "4", "--unroll", "3", "--hidden", "6", "--features", "8",
        "--total-frames", "48", "--log-every", "1", "--no-progress", "--backend", "numpy"]


def make_spec(cell, env, learner="rtrl", stem_grad="tbptt"):
    """An mlp stem (so the stem gradient is checked too), F = 6, H = 5, float64 parameters."""
    return AgentSpec(learner, stem_grad, "mlp", env.observation_shape, env.num_actions, 6, 5, 1.0, "numpy",
                     cell=cell)


def zero_state(spec, learner, B):
    return get_learner(learner, spec.cell, spec.layers).init_state(B, spec.features + 1, spec.hidden, np.float64)


def collect(spec, params, env, rng, n_steps):
    """test_learner_exact's history, acting from the cell's zero state (complex for the LRU)."""
    return collect_history(spec, params, env, rng, n_steps, zero_state(spec, spec.learner, env.num_envs).c)


def unroll_part(hist, k, T):
    return {key: v[k * T:k * T + T + 1] if key in ("obs", "reward", "reset") else v[k * T:k * T + T]
            for key, v in hist.items()}


def learner_grads(learner, spec, params, hist, n_unrolls, T, stem_grad="tbptt", carry=lambda state: state):
    """The learner's gradient summed over n_unrolls consecutive unrolls of T loss steps, state carried
    (through `carry` between unrolls)."""
    spec = spec._replace(learner=learner, stem_grad=stem_grad)
    state = zero_state(spec, learner, hist["obs"].shape[1])
    total = None
    for k in range(n_unrolls):
        part = unroll_part(hist, k, T)
        logits, values, cache = unroll_forward(spec, params, part["obs"], part["reward"], part["reset"], state)
        g = loss_grads(logits, values, part, T)
        grads, state = unroll_backward(spec, params, cache, g.g_logits, g.g_values, state)
        state = carry(state)
        total = grads if total is None else tree_map(np.add, total, grads)
    return total, state


def full_history_bptt(spec, params, hist, n_unrolls, T):
    """One unroll over the whole history: BPTT never cut; each unroll's loss bootstrapped at its own end."""
    spec = spec._replace(learner="tbptt")
    state = zero_state(spec, "tbptt", hist["obs"].shape[1])
    logits, values, cache = unroll_forward(spec, params, hist["obs"], hist["reward"], hist["reset"], state)
    g_logits, g_values = [], []
    for k in range(n_unrolls):
        sl = slice(k * T, k * T + T + 1)
        g = loss_grads(logits[sl], values[sl], unroll_part(hist, k, T), T)
        g_logits.append(g.g_logits), g_values.append(g.g_values)
    grads, _ = unroll_backward(spec, params, cache, np.concatenate(g_logits), np.concatenate(g_values), state)
    return grads


def random_state(rng, like):
    """A random state of `like`'s shape and dtype (B, H), complex parts included for the LRU."""
    s = rng.standard_normal(like.shape)
    if np.iscomplexobj(like):
        s = s + 1j * rng.standard_normal(like.shape)
    return s.astype(like.dtype)


def as_real(s):
    """(2, ...) real and imaginary parts of a complex state (the state itself when real), for compare."""
    return np.stack([s.real, s.imag]) if np.iscomplexobj(s) else s


def assert_tree_close(label, a, b, tol):
    assert [n for n, _ in tree_leaves(a)] == [n for n, _ in tree_leaves(b)]
    for (name, x), (_, y) in zip(tree_leaves(a), tree_leaves(b)):
        c = compare(f"{label} {name}", x, y, tol)
        assert c.ok or (c.vacuous and c.max_abs == 0), c.message()


# ----------------------------------------------------------------------------- exact gradients

@pytest.mark.parametrize("cell", NEW_CELLS)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(2, 5), n_unrolls=st.integers(3, 4))
@settings(max_examples=4)
def test_rtrl_learner_equals_full_history_bptt_on_a_real_env(cell, seed, T, n_unrolls):
    rng = np.random.default_rng(seed)
    with envs.make("memory:cue?delay=3", num_envs=3, seed=seed) as env:
        spec = make_spec(cell, env)
        params = init_agent(rng, spec, np.float64)
        hist = collect(spec, params, env, rng, n_unrolls * T)
    assert hist["reset"][1:].any(), "the history must contain episode resets"
    assert type(params.core) is type(CELLS[cell].init(rng, 2, 2, np.float64))
    rtrl, state = learner_grads("rtrl", spec, params, hist, n_unrolls, T)
    full = full_history_bptt(spec, params, hist, n_unrolls, T)
    tbptt, _ = learner_grads("tbptt", spec, params, hist, n_unrolls, T)
    label = f"{cell} seed={seed} T={T} unrolls={n_unrolls}"
    assert_tree_close(f"core ({label})", rtrl.core, full.core, EXACT)
    assert_tree_close(f"heads ({label})", rtrl.heads, full.heads, EXACT)
    assert_tree_close(f"stem vs tbptt learner ({label})", rtrl.stem, tbptt.stem, EXACT)
    assert type(state.traces) is type(params.core) and any(np.any(S != 0) for S in state.traces)


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_rtrl_learner_on_the_numba_kernels_equals_full_history_bptt(cell, monkeypatch):
    """--backend numba: the rtrl learner's steps run the cells' fused kernels; the gradient over
    consecutive unrolls (resets inside, state and traces carried) is still full-history BPTT's."""
    from rtrl_ref.kernels import cells_numba

    built = []
    online_step = cells_numba.online_step
    monkeypatch.setattr(cells_numba, "online_step", lambda *a: built.append(a[0]) or online_step(*a))
    rng = np.random.default_rng(11)
    with envs.make("memory:cue?delay=3", num_envs=3, seed=11) as env:
        spec = make_spec(cell, env)
        params = init_agent(rng, spec, np.float64)
        hist = collect(spec, params, env, rng, 4 * 3)
    assert hist["reset"][1:].any(), "the history must contain episode resets"
    numba, state = learner_grads("rtrl", spec._replace(backend="numba"), params, hist, 4, 3)
    _, state_numpy = learner_grads("rtrl", spec, params, hist, 4, 3)
    full = full_history_bptt(spec, params, hist, 4, 3)
    assert_tree_close(f"core ({cell}, numba)", numba.core, full.core, EXACT)
    assert_tree_close(f"traces carried out ({cell}, numba vs numpy)", state.traces, state_numpy.traces, EXACT)
    assert len(built) == 4 and all(c is CELLS[cell] for c in built)       # one kernel step per unroll


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_tbptt_learner_is_not_exact_across_unrolls(cell):
    """Negative twin: episodes (delay 6) outlast the unrolls (T = 3), so memory crosses unroll
    boundaries and the gradient cut at each unroll's start is not the exact one."""
    rng = np.random.default_rng(3)
    with envs.make("memory:cue?delay=6", num_envs=2, seed=3) as env:
        spec = make_spec(cell, env)
        params = init_agent(rng, spec, np.float64)
        hist = collect(spec, params, env, rng, 12)
    rtrl, _ = learner_grads("rtrl", spec, params, hist, 4, 3)
    tbptt, _ = learner_grads("tbptt", spec, params, hist, 4, 3)
    full = full_history_bptt(spec, params, hist, 4, 3)
    assert_tree_close("rtrl vs exact (the twin's premise)", rtrl.core, full.core, EXACT)
    assert not all(c.ok for c in compare_fields(f"{cell} tbptt vs exact", tbptt.core, full.core, 1e-3))


def check_stem_gradient_modes(cell, layers=1):
    """immediate = one step's backward (down the layers for a stack, no recurrence): at an unroll's last
    loss step (no future inside the unroll) it equals in-unroll BPTT's, elsewhere it differs; frozen gives
    none. The core's own gradient does not depend on the stem gradient."""
    rng = np.random.default_rng(5)
    T, B, I, H = 4, 2, 3, 5
    params = get_core(cell, layers).init(rng, I, H, np.float64)
    x = rng.standard_normal((T + 1, B, I))                                 # (T + 1, B, I)
    reset = np.zeros((T + 1, B), bool)                                     # (T + 1, B)
    g_h = rng.standard_normal((T, B, H))                                   # (T, B, H)
    learner = get_learner("rtrl", cell, layers)
    state = learner.init_state(B, I, H, np.float64)
    _, cache = learner.forward(params, x, reset, state)
    back = {name: learner.backward(get_stem_grad(name), params, cache, reset, g_h, state) for name in STEM_GRADS}
    assert back["frozen"].g_x is None
    assert compare("last step", back["immediate"].g_x[-1], back["tbptt"].g_x[-1], EXACT).ok
    assert not compare("first step", back["immediate"].g_x[0], back["tbptt"].g_x[0], 1e-3).ok
    assert_tree_close("core grads", back["immediate"].grads, back["frozen"].grads, EXACT)


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_immediate_and_frozen_stem_gradients(cell):
    check_stem_gradient_modes(cell)


# ----------------------------------------------------------------------------- acting vs learning

@pytest.mark.parametrize("learner", sorted(LEARNERS))
@pytest.mark.parametrize("cell", NEW_CELLS)
def test_acting_step_equals_the_learners_forward_pass(cell, learner):
    """`act` one step at a time from a carried state gives the logits and values of the learner's
    forward pass over the same history (per-row resets inside it), and the same state at its end."""
    rng = np.random.default_rng(7)
    N, B = 7, 3
    with envs.make("memory:cue?delay=3", num_envs=B, seed=7) as env:
        spec = make_spec(cell, env, learner)
    params = init_agent(rng, spec, np.float64)
    obs = rng.standard_normal((N, B) + spec.obs_shape)                     # (N, B, 4)
    reward = rng.standard_normal((N, B))                                   # (N, B)
    reset = rng.random((N, B)) < 0.25                                      # (N, B)
    state = zero_state(spec, learner, B)
    state = state._replace(c=random_state(rng, state.c))                  # a state carried in
    s, steps = state.c, []
    for t in range(N):
        logits, value, s = act(spec, params, obs[t], reward[t], reset[t], s)
        steps.append((logits, value))
    logits, values, cache = unroll_forward(spec, params, obs, reward, reset, state)
    assert compare("logits", np.stack([a for a, _ in steps]), logits, EXACT).ok
    assert compare("values", np.stack([v for _, v in steps]), values, EXACT).ok
    if learner != "feedforward":
        assert compare("state", as_real(s), as_real(cache.core.traj.s[-1]), EXACT).ok
        stateless = np.stack([act(spec, params, obs[t], reward[t], reset[t], state.c)[0] for t in range(N)])
        assert not compare("twin: the state not carried", stateless, logits, EXACT).ok


# ----------------------------------------------------------------------------- training and runs

def test_registries_cover_every_cell_learner_and_stem_gradient():
    assert set(CORES) == {"elstm", *CELLS} and set(CELL_STEM_GRADS) == set(STEM_GRADS)
    for name, core in CORES.items():
        assert core.name == name and set(core.learners) == set(LEARNERS)
        assert all(learner.name == key for key, learner in core.learners.items())
    assert get_learner("rtrl") is LEARNERS["rtrl"] and get_learner("tbptt", "elstm") is LEARNERS["tbptt"]
    with pytest.raises(ValueError, match="cell: expected one of"):
        get_core("gru")
    with pytest.raises(SystemExit):
        make_config(["--cell", "gru"])
    assert "--cell" in build_parser().format_help()


@pytest.mark.parametrize("learner", sorted(LEARNERS))
@pytest.mark.parametrize("cell", NEW_CELLS)
def test_each_cell_trains_with_each_learner(tmp_path, cell, learner):
    config = make_config(TINY + ["--run-dir", str(tmp_path), "--env", "memory:cue?delay=2", "--cell", cell,
                                 "--learner", learner])
    assert re.search(rf"\n  cell +{cell}\n", describe_config(config))
    summary = train(config)
    assert summary.frames == 48 and summary.updates == 4
    assert read_config(summary.run_dir).cell == cell
    assert (summary.run_dir / "checkpoint.npz").exists()


@pytest.mark.parametrize("stem_grad", ["immediate", "frozen"])
def test_stem_gradient_modes_train_with_a_cell(tmp_path, stem_grad):
    config = make_config(TINY + ["--run-dir", str(tmp_path), "--env", "memory:cue?delay=2", "--cell", "lru",
                                 "--stem", "mlp", "--stem-grad", stem_grad])
    assert train(config).updates == 4


def test_resume_refuses_a_different_cell_and_evaluates(tmp_path):
    from rtrl_ref.r2ac.evaluate import evaluate_run

    run = train(make_config(TINY + ["--run-dir", str(tmp_path), "--run-name", "r", "--env", "memory:cue?delay=2",
                                    "--cell", "indrnn"])).run_dir
    with pytest.raises(ValueError, match=r"resume: options \['cell'\] differ"):
        make_config(["--resume", str(run), "--cell", "lru"])
    assert evaluate_run(run, episodes=2, num_envs=2).episodes == 2
    resumed = train(make_config(["--resume", str(run), "--total-frames", "96", "--no-progress"]))
    assert resumed.frames == 96
    file = run / "config.json"                                              # an edited config.json
    data = json.loads(file.read_text())
    data["config"]["cell"] = "lru"
    file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"does not match the checkpoint \(cell: config.json 'lru', "
                                         r"checkpoint 'indrnn'\)"):
        train(make_config(["--resume", str(run), "--total-frames", "144", "--no-progress"]))


def test_an_old_run_without_cell_loads_resumes_and_evaluates_as_elstm(tmp_path):
    from rtrl_ref.r2ac.evaluate import evaluate_run

    run = train(make_config(TINY + ["--run-dir", str(tmp_path), "--run-name", "r",
                                    "--env", "memory:cue?delay=2"])).run_dir
    file = run / "config.json"
    data = json.loads(file.read_text())
    del data["config"]["cell"]
    file.write_text(json.dumps(data))
    assert read_config(run).cell == "elstm"
    assert evaluate_run(run, episodes=2, num_envs=2).episodes == 2
    assert train(make_config(["--resume", str(run), "--total-frames", "96", "--no-progress"])).frames == 96
    spec = AgentSpec("rtrl", "tbptt", "mlp", (4,), 2, 6, 5, 1.0, "numpy")   # positional, as before the field
    assert spec.cell == "elstm"


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_chrono_sets_each_cells_memory_times(cell):
    """cell_init "chrono": every cell's recurrence at zero input and zero bias decays as 1 - 1/tau
    with tau spread over [2, T_max] (the eLSTM's chrono distribution); "own" (the default) keeps the
    cell's own initialisation and ignores the eLSTM's forget-gate options; bad values are one-line
    errors; --cell-init reaches the network from the command line."""
    core, c = get_core(cell, 1), CELLS[cell]
    H, T_max = 2000, 60.0
    p = core.init(np.random.default_rng(3), 7, H, np.float64, cell_init="chrono", chrono_T_max=T_max)
    p = type(p)(*(np.zeros_like(a) if a.ndim == 2 or name in ("b", "b_h") else a        # zero input, zero bias
                  for name, a in zip(p._fields, p)))
    x, s = np.zeros((1, 7)), c.zero_state(p, 1) + 1e-6
    _, cache = c.step(p, x, s)
    tau = 1.0 / (1.0 - np.abs(c.jacobian(cache))[0])                                  # (H,)
    assert tau.min() >= 2.0 - 1e-9 and tau.max() <= T_max + 1e-6
    assert np.quantile(tau, 0.1) < 10 and np.quantile(tau, 0.9) > 50                     # spread, not one value
    same = core.init(np.random.default_rng(3), 7, 5, np.float64, forget_init="chrono")   # own: the cell's
    want = c.init(np.random.default_rng(3), 7, 5, np.float64)
    assert all(np.array_equal(a, b) for a, b in zip(same, want))
    with pytest.raises(ValueError, match=r"chrono_T_max: expected a number > 2, got 2\.0"):
        core.init(np.random.default_rng(3), 7, 5, np.float64, cell_init="chrono", chrono_T_max=2.0)
    with pytest.raises(ValueError, match=r"cell_init: expected one of \('own', 'chrono'\), got 'x'"):
        core.init(np.random.default_rng(3), 7, 5, np.float64, cell_init="x")
    config = make_config(["--env", "memory:cue", "--cell", cell, "--cell-init", "chrono", "--chrono-t-max", str(T_max)])
    spec = AgentSpec("rtrl", "tbptt", "mlp", (4,), 2, 6, 5, 1.0, "numpy", cell=cell, cell_init=config.cell_init,
                     chrono_t_max=T_max)
    core_params = init_agent(np.random.default_rng(3), spec).core
    assert config.cell_init == "chrono" and not all(
        np.array_equal(a, b) for a, b in zip(core_params, init_agent(np.random.default_rng(3),
                                                                     spec._replace(cell_init="own")).core))


def test_cell_init_chrono_with_the_elstm_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"cell_init: expected own with cell elstm \(the eLSTM's is forget_init\)"):
        make_config(["--env", "memory:cue", "--cell-init", "chrono"])
