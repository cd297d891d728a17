"""The acting half of actor-learner R2AC (`--actors N`, rtrl_ref/r2ac/distributed.py runs it on Ray).

An actor owns b environments (b = num_envs / actors), a copy of the parameters (the version the
learner last sent it) and the core state its environments carry: the cell c and, with --learner
rtrl, the RTRL traces. It acts with the synchronous loop's own `collect_rollout` and then moves the
state over the rollout's T loss steps with its own parameter copy, so the traces it carries are
*stale*: each segment of them was computed with the parameters of the rollout it belongs to, as
in the paper's R2AC (an actor cannot know the learner's later parameters). The learner recomputes
the forward pass with its current parameters from the state the rollout carries in.

Nothing here imports Ray: `RolloutActor` is a plain class that distributed.py turns into a Ray
actor (and that a test may drive in-process).
"""

from __future__ import annotations

import os
import platform
from typing import NamedTuple

import numpy as np

import envs
from rtrl_ref.r2ac.config import Config
from rtrl_ref.r2ac.core import CoreState, get_learner, get_stem_grad
from rtrl_ref.r2ac.loop import EnvOutput, Rollout, collect_rollout
from rtrl_ref.r2ac.network import AgentSpec, unroll_forward
from rtrl_ref.r2ac.tree import tree_map

__all__ = ["ActorRollout", "RolloutActor", "advance_state", "concat_states", "copy_state"]


class ActorRollout(NamedTuple):
    """What an actor sends the learner: one rollout and where it started."""

    rollout: Rollout          # T + 1 steps of the actor's b environments; stem None (the learner reruns it)
    state: CoreState          # c (b, H) and traces (b, H, I) at the rollout's start, from the actor's parameters
    version: int              # the parameter version (learner updates made) the actor acted with
    episodes: tuple           # envs EpisodeStats of the episodes that ended during the rollout


def copy_state(state: CoreState) -> CoreState:
    """A writable copy of a core state (the learner's RTRL overwrites the traces it is given)."""
    return CoreState(np.array(state.c), None if state.traces is None else tree_map(np.array, state.traces))


def concat_states(states: list[CoreState]) -> CoreState:
    """The core states of several groups of environments as one batch (rows in the given order)."""
    c = np.concatenate([s.c for s in states])                                    # (B, H)
    if states[0].traces is None:
        return CoreState(c, None)
    return CoreState(c, tree_map(lambda *xs: np.concatenate(xs), *(s.traces for s in states)))  # (B, H, I)


def advance_state(spec: AgentSpec, params, rollout: Rollout, state: CoreState) -> CoreState:
    """The core state after the rollout's T loss steps, from `state` at its start, with `params`.

    The same forward and backward as the learner's (so the same cell and traces to round-off when
    the parameters are the same), with a zero loss gradient and no stem gradient: the carried-out
    state does not depend on the loss. `state` is given up (its traces may be overwritten).
    """
    T, B = rollout.actions.shape
    learner = get_learner(spec.learner, spec.cell, spec.layers)
    _, _, cache = unroll_forward(spec, params, rollout.obs, rollout.reward, rollout.reset, state, rollout.stem)
    g_h = np.zeros((T, B, learner.out_features(spec.features + 1, spec.hidden)), np.float32)   # (T, B, H)
    back = learner.backward(get_stem_grad("frozen"), params.core, cache.core, cache.reset, g_h, state,
                            spec.backend)
    return back.state


class RolloutActor:
    """b environments, their carried core state and the rng of their actions (one actor's all).

    rollout(params, version, T) acts T steps with `params` (version `version`) and returns an
    ActorRollout; the environments and the state continue from there at the next call.
    """

    def __init__(self, config: Config, spec: AgentSpec, num_envs: int, seed: int):
        self.spec = spec
        self.env = envs.make(config.env, num_envs=num_envs, seed=seed)
        self.rng = np.random.default_rng(seed)
        learner = get_learner(spec.learner, spec.cell, spec.layers)
        self.state = learner.init_state(num_envs, spec.features + 1, spec.hidden, np.float32)   # c (b, H)
        obs, _ = self.env.reset()
        self.last = EnvOutput(obs, np.zeros(num_envs, np.float32), np.ones(num_envs, bool))  # (b,), (b,)
        self.keep_stem = config.reuse_stem

    def rollout(self, params, version: int, T: int) -> ActorRollout:
        state_0 = self.state
        rollout, self.last, finished = collect_rollout(self.env, self.spec, params, self.rng, self.last, state_0.c,
                                                       T, keep_stem=self.keep_stem)
        self.state = advance_state(self.spec, params, rollout, copy_state(state_0))
        return ActorRollout(rollout._replace(stem=None), state_0, version, tuple(finished))

    def where(self) -> tuple[str, int]:
        """(host name, process id) of this actor, for the learner to see its process end."""
        return platform.node(), os.getpid()

    def close(self) -> None:
        self.env.close()
