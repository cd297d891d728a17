"""The learner may reuse the acting pass's stem: caches joined step by step equal one pass over all.

For every stem that can join its caches, the stem's backward through the joined cache of T + 1
passes over B observations each gives the gradients of one pass over the (T + 1, B) observations,
and a learner step on a rollout that kept its stem pass equals the step that runs the stem again.
Joining in the wrong order (the classic mix-up of time-major and batch-major rows) is caught.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.r2ac.config import make_config
from rtrl_ref.r2ac.loop import EnvOutput, collect_rollout, learner_step
from rtrl_ref.r2ac.network import AgentSpec, StemPass, agent_spec, init_agent, join_stem_passes
from rtrl_ref.r2ac.optim import rmsprop_init
from rtrl_ref.r2ac.stems import STEMS
from rtrl_ref.r2ac.tree import tree_leaves
from verify.compare import assert_close, tolerance

JOINABLE = sorted(name for name, stem in STEMS.items() if stem.join is not None and name != "identity")
SHAPES = {"nature": (2, 36, 44), "mlp": (5,)}       # a non-square image: rows and columns differ


def _obs(rng, obs_shape, lead):
    if len(obs_shape) == 3:
        return rng.integers(0, 256, lead + obs_shape, dtype=np.uint8)
    return rng.standard_normal(lead + obs_shape)


def joined_vs_single(name, T1, B, seed, order=lambda passes: passes):
    """(grads through one pass over all, grads through the joined per-step passes, features of both)."""
    rng = np.random.default_rng(seed)
    stem = STEMS[name]
    params = stem.init(rng, SHAPES[name], 6, np.float64, init_scheme="he")
    obs = _obs(rng, SHAPES[name], (T1, B))                                  # (T + 1, B, ...)
    G = rng.standard_normal((T1, B, 6))                                     # (T + 1, B, F)
    features, cache = stem.forward(params, obs)
    passes = order([StemPass(*stem.forward(params, obs[t])) for t in range(T1)])
    joined_features = np.stack([p.features for p in passes])
    joined = stem.join([p.cache for p in passes], (T1, B))
    return stem.backward(G, cache, params), stem.backward(G, joined, params), features, joined_features


@pytest.mark.parametrize("name", JOINABLE)
@settings(max_examples=12, deadline=None, derandomize=True)
@given(T1=st.integers(1, 4), B=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_joined_caches_give_the_gradients_of_one_pass(name, T1, B, seed):
    single, joined, features, joined_features = joined_vs_single(name, T1, B, seed)
    assert_close(f"{name} features", joined_features, features, tolerance("exact", np.float64))
    for (leaf, a), (_, b) in zip(tree_leaves(joined), tree_leaves(single)):
        assert_close(f"{name} {leaf}", a, b, tolerance("exact", np.float64))


@pytest.mark.parametrize("name", JOINABLE)
def test_joining_in_the_wrong_order_is_caught(name):
    single, joined, _, _ = joined_vs_single(name, 3, 2, 5, order=lambda passes: passes[::-1])
    assert any(not np.allclose(a, b) for (_, a), (_, b) in zip(tree_leaves(joined), tree_leaves(single)))


@pytest.mark.parametrize("env, stem", [("atari", "nature"), ("memory:cue?delay=2", "mlp"),
                                       ("memory:cue?delay=2", "identity")])
def test_a_learner_step_on_the_kept_stem_pass_equals_the_rerun(env, stem):
    if env == "atari":
        pytest.importorskip("cv2")
        pytest.importorskip("ale_py")
        env = "atari:Breakout?size=36"
    config = make_config(["--env", env, "--stem", stem, "--num-envs", "3", "--unroll", "4", "--hidden", "5",
                          "--features", "6" if stem != "identity" else "32", "--backend", "numpy",
                          "--stem-init", "he"])
    import envs

    with envs.make(config.env, num_envs=3, seed=0) as env_:
        spec = agent_spec(config, env_)
        params = init_agent(np.random.default_rng(0), spec)
        from rtrl_ref.r2ac.core import get_learner

        state = get_learner(config.learner).init_state(3, spec.features + 1, config.hidden, np.float32)
        obs, _ = env_.reset()
        last = EnvOutput(obs, np.zeros(3, np.float32), np.ones(3, bool))
        rollout, _, _ = collect_rollout(env_, spec, params, np.random.default_rng(1), last, state.c, 4)
    assert (rollout.stem is None) == (STEMS[spec.stem].join is None)
    kept = learner_step(config, spec, params, rmsprop_init(params), rollout, state, 0)
    rerun = learner_step(config, spec, params, rmsprop_init(params), rollout._replace(stem=None), state, 0)
    for (leaf, a), (_, b) in zip(tree_leaves(kept[0]), tree_leaves(rerun[0])):
        assert_close(f"params after the update: {leaf}", a, b, tolerance("exact", np.float32))


def test_stems_that_cannot_join_run_again():
    spec = AgentSpec("rtrl", "tbptt", "impala", (3, 12, 12), 4, 6, 5, 1.0, "numpy")
    assert STEMS["impala"].join is None and join_stem_passes(spec, []) is None
