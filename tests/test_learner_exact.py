"""The training loop's learner, end to end on a real environment, with parameters frozen.

Over several consecutive unrolls (episode resets inside unrolls, traces carried between them),
the eLSTM gradient the `rtrl` learner accumulates equals full BPTT of the same summed loss
over the whole history; output gate and heads agree too; the stem gradient equals the one of
the `tbptt` learner (in-unroll BPTT, the paper's choice for the stem). The `tbptt` learner's
eLSTM gradient differs from the exact one.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from rtrl_ref.r2ac.core import get_learner
from rtrl_ref.r2ac.heads import action_log_probs, sample_actions
from rtrl_ref.r2ac.loss import actor_critic_loss
from rtrl_ref.r2ac.network import AgentSpec, act, init_agent, unroll_backward, unroll_forward
from rtrl_ref.r2ac.tree import tree_leaves, tree_map
from rtrl_ref.r2ac.vtrace import vtrace
from verify.compare import compare, tolerance

EXACT = tolerance("exact", np.float64)


def collect(spec, params, env, rng, n_steps, c=None):
    """Act with frozen parameters from the core state c (B, H) (zeros if None; tests/test_cells_agent.py
    passes other cells' states); returns the whole history (obs, reward, reset, actions, logp)."""
    B = env.num_envs
    obs, _ = env.reset()
    reward, reset = np.zeros(B), np.ones(B, bool)
    c = np.zeros((B, spec.hidden)) if c is None else c
    hist = dict(obs=[], reward=[], reset=[], actions=[], logp=[])
    for _ in range(n_steps):
        obs = obs.astype(np.float64)
        hist["obs"].append(obs), hist["reward"].append(reward), hist["reset"].append(reset)
        logits, _, c = act(spec, params, obs, reward, reset, c)
        a = sample_actions(rng, logits)
        hist["actions"].append(a), hist["logp"].append(action_log_probs(logits, a))
        step = env.step(a)
        obs, reward, reset = step.obs, step.reward.astype(np.float64), step.reset
    hist["obs"].append(obs.astype(np.float64)), hist["reward"].append(reward), hist["reset"].append(reset)
    return {k: np.stack(v) for k, v in hist.items()}


def loss_grads(logits, values, rollout, T):
    rewards = np.clip(rollout["reward"][1:T + 1], -1, 1)
    discounts = 0.99 * ~rollout["reset"][1:T + 1]
    vs, adv = vtrace(rollout["logp"][:T], action_log_probs(logits[:T], rollout["actions"][:T]),
                     rewards, discounts, values[:T], values[T])
    return actor_critic_loss(logits[:T], values[:T], rollout["actions"][:T], vs, adv)[1]


def learner_grads(learner, spec, params, hist, n_unrolls, T):
    spec = spec._replace(learner=learner)
    B = hist["obs"].shape[1]
    state = get_learner(learner).init_state(B, spec.features + 1, spec.hidden, np.float64)
    total = None
    for k in range(n_unrolls):
        part = {key: v[k * T:k * T + T + 1] if key in ("obs", "reward", "reset") else v[k * T:k * T + T]
                for key, v in hist.items()}
        logits, values, cache = unroll_forward(spec, params, part["obs"], part["reward"], part["reset"], state)
        g = loss_grads(logits, values, part, T)
        grads, state = unroll_backward(spec, params, cache, g.g_logits, g.g_values, state)
        total = grads if total is None else tree_map(np.add, total, grads)
    return total


def full_history_bptt(spec, params, hist, n_unrolls, T):
    """One unroll over the whole history: BPTT never cut; per-step loss gradients as above."""
    spec = spec._replace(learner="tbptt")
    B = hist["obs"].shape[1]
    state = get_learner("tbptt").init_state(B, spec.features + 1, spec.hidden, np.float64)
    logits, values, cache = unroll_forward(spec, params, hist["obs"], hist["reward"], hist["reset"], state)
    g_logits, g_values = [], []
    for k in range(n_unrolls):      # each unroll's loss, bootstrapped at its own end
        part = {key: v[k * T:k * T + T + 1] for key, v in hist.items()}
        g = loss_grads(logits[k * T:k * T + T + 1], values[k * T:k * T + T + 1], part, T)
        g_logits.append(g.g_logits), g_values.append(g.g_values)
    grads, _ = unroll_backward(spec, params, cache, np.concatenate(g_logits), np.concatenate(g_values), state)
    return grads


def assert_tree_close(label, a, b, tol):
    for (name, x), (_, y) in zip(tree_leaves(a), tree_leaves(b)):
        c = compare(f"{label} {name}", x, y, tol)
        assert c.ok or (c.vacuous and c.max_abs == 0), c.message()


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(2, 5), n_unrolls=st.integers(3, 4))
@settings(max_examples=8)
def test_rtrl_learner_equals_full_history_bptt_on_a_real_env(seed, T, n_unrolls):
    rng = np.random.default_rng(seed)
    with envs.make("memory:cue?delay=3", num_envs=3, seed=seed) as env:
        spec = AgentSpec("rtrl", "tbptt", "mlp", env.observation_shape, env.num_actions, 6, 5, 1.0, "numpy", 1.0)
        params = init_agent(rng, spec, np.float64)
        hist = collect(spec, params, env, rng, n_unrolls * T)
    assert hist["reset"][1:].any(), "the history must contain episode resets"
    rtrl = learner_grads("rtrl", spec, params, hist, n_unrolls, T)
    full = full_history_bptt(spec, params, hist, n_unrolls, T)
    tbptt = learner_grads("tbptt", spec, params, hist, n_unrolls, T)
    label = f"seed={seed} T={T} unrolls={n_unrolls}"
    assert_tree_close(f"eLSTM ({label})", rtrl.core.elstm, full.core.elstm, EXACT)
    assert_tree_close(f"output gate ({label})", rtrl.core.gate, full.core.gate, EXACT)
    assert_tree_close(f"heads ({label})", rtrl.heads, full.heads, EXACT)
    assert_tree_close(f"stem vs tbptt learner ({label})", rtrl.stem, tbptt.stem, EXACT)


def test_tbptt_learner_is_not_exact_across_unrolls():
    rng = np.random.default_rng(3)
    with envs.make("memory:cue?delay=6", num_envs=2, seed=3) as env:
        spec = AgentSpec("rtrl", "tbptt", "mlp", env.observation_shape, env.num_actions, 6, 5, 1.0, "numpy", 2.0)
        params = init_agent(rng, spec, np.float64)
        hist = collect(spec, params, env, rng, 4 * 3)
    tbptt = learner_grads("tbptt", spec, params, hist, 4, 3)
    full = full_history_bptt(spec, params, hist, 4, 3)
    assert compare("tbptt W_z", tbptt.core.elstm.W_z, full.core.elstm.W_z, 1e-3).ok is False
