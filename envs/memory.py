"""Built-in memory tasks in vectorised NumPy: the copy task (supervised) and `memory:cue` (RL).

Copy task (`copy_task_batch`), a *true* copy task. Symbols: 0 and 1 are bits, 2 is the blank.
For a pattern of length L (drawn uniformly from [min_len, max_len]) and T = 2 * max_len:

    input  x_t:  bits_0 .. bits_{L-1}, then blanks (T - L of them)
    target y_t:  blanks (L), then bits_0 .. bits_{L-1}, then blanks (T - 2L)
    mask   m_t:  True exactly at the L recall steps t in [L, 2L)

The first blank of the input tells the learner that the pattern is over; from that very step on
it must emit the bits in order. Loss and accuracy count the masked steps only, and *both* bit
values count. (The paper's code ignored target bit "1" instead of the blank through a vocabulary
quirk in the paper's public code; that easier task is not reproduced here.) A sequence is correct when
all its masked steps are.

RL task `memory:cue?delay=N&cues=K` (one episode = N + 2 agent steps):

    step 0      obs shows the cue c (one of K symbols) with the "cue" flag on
    steps 1..N  distractors: a random symbol each step (same K channels), no flags
    step N + 1  query: no symbol, the "query" flag on; the action taken now is the choice
    reward      +1 if the choice equals c, else 0 (actions before the query are ignored)

Observation float32 (K + 2,): [symbol one-hot (K) | cue flag | query flag]. Actions: K.
Optimal return 1 per episode; uniformly random choice 1/K; a memoryless policy can do no better
than 1/K. The memory span (cue to choice) is N + 1 steps, so N can exceed any unroll length.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from envs.base import BatchedEnv, EpisodeStats, StepResult
from envs.spec import Option

BLANK = 2
NUM_SYMBOLS = 3

OPTIONS = (
    Option("delay", "int", 10, "number of distractor steps between cue and query", low=0),
    Option("cues", "int", 2, "number of cue symbols K (= number of actions)", low=2),
    Option("distractors", "bool", True, "show a random symbol at each delay step (else zeros)"),
)


class CopyBatch(NamedTuple):
    """One batch of copy-task sequences, time-major."""

    inputs: np.ndarray     # (T, B, 3) float32 one-hot of the input symbols
    targets: np.ndarray    # (T, B) int64 target symbols (0, 1 bits; 2 blank)
    mask: np.ndarray       # (T, B) bool: the recall steps, the only ones that count
    lengths: np.ndarray    # (B,) int64 pattern length L of each sequence


def copy_task_batch(rng: np.random.Generator, batch: int, max_len: int,
                    min_len: int = 1) -> CopyBatch:
    """Draw `batch` copy-task sequences of length T = 2 * max_len (see the module docstring)."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"copy_task_batch: expected 1 <= min_len <= max_len, got "
                         f"min_len={min_len}, max_len={max_len}")
    if batch < 1:
        raise ValueError(f"copy_task_batch: batch expects an integer >= 1, got {batch}")
    T = 2 * max_len
    lengths = rng.integers(min_len, max_len + 1, size=batch)                # (B,)
    bits = rng.integers(0, 2, size=(max_len, batch))                       # (max_len, B)
    t = np.arange(T)[:, None]                                              # (T, 1)
    in_pattern = t < lengths[None, :]                                      # (T, B)
    mask = (t >= lengths[None, :]) & (t < 2 * lengths[None, :])            # (T, B)
    bits_then_blanks = np.concatenate([bits, np.full_like(bits, BLANK)])   # (T, B)
    symbols = np.where(in_pattern, bits_then_blanks, BLANK)                # (T, B)
    recall_index = np.clip(t - lengths[None, :], 0, max_len - 1)           # (T, B)
    recalled = np.take_along_axis(bits, recall_index, axis=0)              # (T, B)
    targets = np.where(mask, recalled, BLANK).astype(np.int64)             # (T, B)
    inputs = np.eye(NUM_SYMBOLS, dtype=np.float32)[symbols]                # (T, B, 3)
    return CopyBatch(inputs, targets, mask, lengths.astype(np.int64))


def copy_task_accuracy(predictions: np.ndarray, batch: CopyBatch) -> tuple[float, float]:
    """(symbol accuracy over masked steps, fraction of sequences with every masked step right)."""
    predictions = np.asarray(predictions)                                  # (T, B)
    if predictions.shape != batch.targets.shape:
        raise ValueError(f"predictions: expected shape {batch.targets.shape}, "
                         f"got {predictions.shape}")
    right = (predictions == batch.targets) | ~batch.mask                   # (T, B)
    symbol_acc = float(right[batch.mask].mean()) if batch.mask.any() else 1.0
    return symbol_acc, float(right.all(axis=0).mean())


def copy_task_accuracy_by_length(predictions: np.ndarray, batch: CopyBatch) -> dict[int, tuple[int, float]]:
    """{pattern length n: (sequences of length n, fraction of them with every recall step right)}."""
    predictions = np.asarray(predictions)                                  # (T, B)
    if predictions.shape != batch.targets.shape:
        raise ValueError(f"predictions: expected shape {batch.targets.shape}, got {predictions.shape}")
    right = ((predictions == batch.targets) | ~batch.mask).all(axis=0)     # (B,)
    return {int(n): (int((batch.lengths == n).sum()), float(right[batch.lengths == n].mean()))
            for n in np.unique(batch.lengths)}


def copy_task_longest_solved(predictions: np.ndarray, batch: CopyBatch) -> int:
    """The longest pattern length n such that every sequence of length <= n in `batch` is recalled
    without an error (0: some sequence of length 1 is wrong)."""
    longest = 0
    for n, (_, acc) in sorted(copy_task_accuracy_by_length(predictions, batch).items()):
        if acc < 1.0:
            break
        longest = n
    return longest


def make(name: str, num_envs: int, seed: int | None, options: dict[str, Any],
         spec: str) -> BatchedEnv:
    """`memory:cue` (the only RL task); `memory:copy` is supervised: see copy_task_batch."""
    if name == "cue":
        return CueMemoryEnv(num_envs, seed, delay=options["delay"], cues=options["cues"],
                            distractors=options["distractors"], spec=spec)
    if name == "copy":
        raise ValueError(f"{spec}: the copy task is supervised, not an RL env; use "
                         "envs.memory.copy_task_batch(rng, batch, max_len)")
    raise ValueError(f"{spec}: unknown memory task {name!r}; known tasks: ['cue'] "
                     "(and the supervised envs.memory.copy_task_batch)")


class CueMemoryEnv(BatchedEnv):
    """Vectorised cue / delay / choice task (see the module docstring)."""

    def __init__(self, num_envs: int, seed: int | None, *, delay: int, cues: int,
                 distractors: bool, spec: str = "memory:cue") -> None:
        super().__init__()
        self.spec = spec
        self.num_envs = num_envs
        self.num_actions = cues
        self.observation_shape = (cues + 2,)
        self.observation_dtype = np.dtype(np.float32)
        self.delay, self.distractors = delay, distractors
        self.episode_length = delay + 2
        self._rng = np.random.default_rng(seed)
        self._cue = np.zeros(num_envs, dtype=np.int64)        # (B,) cue of the current episode
        self._t = np.zeros(num_envs, dtype=np.int64)          # (B,) step index within episode
        self._score = np.zeros(num_envs, dtype=np.float64)    # (B,) running episode score
        self._rows = np.arange(num_envs)                      # (B,)

    def _reset(self) -> tuple[np.ndarray, dict[str, Any]]:
        everyone = np.ones(self.num_envs, dtype=bool)         # (B,)
        self._start_episodes(everyone)
        return self._observe(), {}

    def _step(self, actions: np.ndarray) -> StepResult:
        at_query = self._t == self.delay + 1                              # (B,)
        reward = (at_query & (actions == self._cue)).astype(np.float32)   # (B,)
        self._score += reward
        episodes = tuple(EpisodeStats(int(b), float(self._score[b]), self.episode_length)
                         for b in np.flatnonzero(at_query))
        self._t += 1
        self._start_episodes(at_query)
        return StepResult(self._observe(), reward, at_query, episodes)

    def _start_episodes(self, which: np.ndarray) -> None:
        count = int(which.sum())
        if count:
            self._cue[which] = self._rng.integers(0, self.num_actions, size=count)
            self._t[which] = 0
            self._score[which] = 0.0

    def _observe(self) -> np.ndarray:
        K = self.num_actions
        at_cue = self._t == 0                                             # (B,)
        noise = self._rng.integers(0, K, size=self.num_envs)              # (B,) distractors
        symbol = np.where(at_cue, self._cue, noise)                       # (B,)
        shown = at_cue | (self.distractors & (self._t <= self.delay))     # (B,)
        obs = np.zeros((self.num_envs, K + 2), dtype=np.float32)          # (B, I)
        obs[self._rows, symbol] = shown
        obs[:, K] = at_cue
        obs[:, K + 1] = self._t == self.delay + 1
        return obs

    def _close(self) -> None:
        pass
