"""The R2AC network: stem -> [features ; clipped reward] -> recurrent core -> heads.

    x_t      = [stem(obs_t) ; clip(r_t)]          (B, I),  I = features + 1
    h_t      = core(x_t)                          eLSTM + output gate (AgentSpec.layers stacked eLSTMs,
                                                  the gate on the top one), or Re(s_t) of a cell of
                                                  rtrl_ref.cells (AgentSpec.cell; rtrl_ref.r2ac.core)
    logits_t, v_t = heads(h_t)                    (B, A), (B,)

r_t is the reward that arrived with obs_t; it is zeroed on reset steps (it belongs to the
previous episode, see envs/base.py). Acting runs one step at a time without caches; learning
re-runs the unroll with caches (same parameters, so the same numbers) and back-propagates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from rtrl_ref.r2ac.core import CoreParams, CoreState, get_core, get_learner, get_stem_grad
from rtrl_ref.r2ac.heads import heads_backward, heads_forward, init_heads
from rtrl_ref.r2ac.stems import get_stem


class AgentParams(NamedTuple):
    stem: Any                 # stem pytree
    core: CoreParams | Any    # eLSTM + output gate, or the cell's params (unused by the feedforward learner)
    heads: Any                # policy and value heads


class AgentSpec(NamedTuple):
    """Static description of the network (never trained)."""

    learner: str
    stem_grad: str
    stem: str
    obs_shape: tuple
    num_actions: int
    features: int
    hidden: int
    reward_clip: float
    backend: str
    forget_bias: float = 0.0
    stem_init: str = "pytorch"
    forget_init: str = "constant"
    chrono_t_max: float = 100.0
    cell: str = "elstm"       # the core (rtrl_ref.r2ac.core.CORES); runs saved before it existed are eLSTM ones
    layers: int = 1           # stacked eLSTM layers (cell elstm only; rtrl_ref.r2ac.core.stacked_core)
    cell_init: str = "own"    # the other cells' initialisation: own or chrono (rtrl_ref.r2ac.core.CELL_INITS)


def resolve_stem(stem: str, obs_shape: tuple) -> str:
    if stem != "auto":
        return stem
    return "nature" if len(obs_shape) == 3 else "mlp"


def agent_spec(config, env) -> AgentSpec:
    """The network a training config (rtrl_ref.r2ac.config.Config) builds for an environment.

    ValueError naming the flag when the stem cannot take the environment's observations.
    """
    stem = resolve_stem(config.stem, env.observation_shape)
    shape = tuple(env.observation_shape)
    if stem in ("nature", "impala") and len(shape) != 3:
        raise ValueError(f"--stem {stem}: needs image observations (channels, height, width), but {config.env} "
                         f"gives vectors of shape {shape}; use --stem mlp or identity")
    if stem in ("mlp", "identity") and len(shape) != 1:
        raise ValueError(f"--stem {stem}: needs vector observations, but {config.env} gives shape {shape}; "
                         f"use --stem nature or impala")
    features = int(np.prod(shape)) if stem == "identity" else config.features
    return AgentSpec(config.learner, config.stem_grad, stem, shape,
                     env.num_actions, features, config.hidden, config.reward_clip, config.backend,
                     config.forget_bias, config.stem_init, config.forget_init, config.chrono_t_max,
                     cell=config.cell, layers=config.layers, cell_init=config.cell_init)


def init_agent(rng: np.random.Generator, spec: AgentSpec, dtype=np.float32) -> AgentParams:
    learner = get_learner(spec.learner, spec.cell, spec.layers)
    get_stem_grad(spec.stem_grad)
    I = spec.features + 1
    stem = get_stem(spec.stem).init(rng, spec.obs_shape, spec.features, dtype, init_scheme=spec.stem_init)
    options = dict(forget_bias=spec.forget_bias, forget_init=spec.forget_init, chrono_T_max=spec.chrono_t_max)
    if spec.cell != "elstm":
        options = dict(cell_init=spec.cell_init, chrono_T_max=spec.chrono_t_max)
    core = get_core(spec.cell, spec.layers).init(rng, I, spec.hidden, dtype, **options)
    heads = init_heads(rng, learner.out_features(I, spec.hidden), spec.num_actions, dtype)
    return AgentParams(stem, core, heads)


def core_input(features, reward, reset, reward_clip: float):
    """[features ; clip(reward)] with the reward zeroed where an episode starts. (..., F + 1)"""
    r = np.clip(reward, -reward_clip, reward_clip) * ~reset                # (...,)
    return np.concatenate([features, r[..., None].astype(features.dtype)], axis=-1)


class StemPass(NamedTuple):
    """The stem's forward pass over some observations: what the learner needs of it."""

    features: np.ndarray      # (..., F)
    cache: Any                # the stem's cache for its backward pass


def act(spec: AgentSpec, params: AgentParams, obs, reward, reset, c_tm1):
    """One acting step for B environments: (logits (B, A), value (B,), c_t (B, H): the core's state)."""
    return act_with_stem(spec, params, obs, reward, reset, c_tm1)[:3]


def act_with_stem(spec: AgentSpec, params: AgentParams, obs, reward, reset, c_tm1):
    """`act`, also returning the step's StemPass (features (B, F)) for the learner to reuse."""
    features, stem_cache = get_stem(spec.stem).forward(params.stem, obs)   # (B, F)
    x_t = core_input(features, reward, reset, spec.reward_clip)            # (B, I)
    h_t, c_t = get_learner(spec.learner, spec.cell, spec.layers).step(params.core, x_t, reset, c_tm1)
    logits, value, _ = heads_forward(params.heads, h_t)
    return logits, value, c_t, StemPass(features, stem_cache)


def join_stem_passes(spec: AgentSpec, passes: list) -> StemPass | None:
    """The StemPass over (T + 1, B) observations from T + 1 passes over B each (same parameters);
    None when the stem cannot join its caches (the learner then runs the stem again)."""
    join = get_stem(spec.stem).join
    if join is None:
        return None
    features = np.stack([p.features for p in passes])                     # (T + 1, B, F)
    return StemPass(features, join([p.cache for p in passes], features.shape[:2]))


class UnrollCache(NamedTuple):
    stem: Any
    core: Any
    heads: Any
    reset: np.ndarray         # (T + 1, B)


def unroll_forward(spec: AgentSpec, params: AgentParams, obs, reward, reset, state: CoreState,
                   stem_pass: StemPass | None = None):
    """obs (T + 1, B, ...) -> (logits (T + 1, B, A), values (T + 1, B), cache).

    stem_pass: the stem's pass over these observations with these parameters, if already made
    (by the acting steps); else the stem runs here.
    """
    if stem_pass is None:
        stem_pass = StemPass(*get_stem(spec.stem).forward(params.stem, obs))
    features, stem_cache = stem_pass                                       # (T + 1, B, F)
    x = core_input(features, reward, reset, spec.reward_clip)              # (T + 1, B, I)
    learner = get_learner(spec.learner, spec.cell, spec.layers)
    h, core_cache = learner.forward(params.core, x, reset, state, spec.backend)
    logits, values, heads_cache = heads_forward(params.heads, h)
    return logits, values, UnrollCache(stem_cache, core_cache, heads_cache, reset)


def unroll_backward(spec: AgentSpec, params: AgentParams, cache: UnrollCache, g_logits, g_values,
                    state_in: CoreState):
    """Gradients for the T loss steps: g_logits (T, B, A), g_values (T, B).

    Returns (grads: AgentParams with None where nothing is trained, state carried out).
    """
    T = g_logits.shape[0]
    g_logits_all = np.concatenate([g_logits, np.zeros_like(g_logits[:1])])  # (T + 1, B, A)
    g_values_all = np.concatenate([g_values, np.zeros_like(g_values[:1])])  # (T + 1, B)
    g_h, g_heads = heads_backward(g_logits_all, g_values_all, cache.heads, params.heads)
    back = get_learner(spec.learner, spec.cell, spec.layers).backward(
        get_stem_grad(spec.stem_grad), params.core, cache.core, cache.reset, g_h[:T], state_in, spec.backend)
    g_stem = None
    if back.g_x is not None:
        g_features = np.concatenate([back.g_x[..., :-1], np.zeros_like(back.g_x[:1, ..., :-1])])
        g_stem = get_stem(spec.stem).backward(g_features, cache.stem, params.stem)
    return AgentParams(g_stem, back.grads, g_heads), back.state
