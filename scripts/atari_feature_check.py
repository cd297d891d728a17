"""How alive is a pixel agent's network? Dead ReLUs in the Nature stem and saturation of the eLSTM.

    python scripts/atari_feature_check.py RUN_DIR            # the run's checkpoint
    python scripts/atari_feature_check.py RUN_DIR --fresh    # the run's network at initialisation

Collects 64 steps of 8 environments of the run's game with random actions, passes the frames
through the stem and one eLSTM step (from a zero cell), and prints per layer:

- conv layers: channels never active over all frames, and the fraction of active units;
- stem FC: units never active, the mean feature and how much a unit varies between frames;
- eLSTM: |pre-activation of z|, the fraction of saturated z (|tanh| > 0.99), how much z and h vary
  between frames, and the forget and output gates' means.

A core whose z is saturated and whose h hardly varies between frames passes almost no gradient to
the stem and carries almost no information about the frame (docs/results/atari-breakout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs
from rtrl_ref.cell import cell_step
from rtrl_ref.out_gate import out_gate
from rtrl_ref.r2ac.checkpoint import load_run_checkpoint
from rtrl_ref.r2ac.config import read_config
from rtrl_ref.r2ac.conv import conv2d
from rtrl_ref.r2ac.layers import linear
from rtrl_ref.r2ac.network import agent_spec, core_input, init_agent
from rtrl_ref.r2ac.optim import rmsprop_init
from rtrl_ref.r2ac.stems import NATURE_CONVS


def frames_of(env_spec: str, steps: int = 64, num_envs: int = 8, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    with envs.make(env_spec, num_envs=num_envs, seed=seed) as env:
        env.reset()
        obs = [env.step(rng.integers(0, env.num_actions, num_envs)).obs for _ in range(steps)]
    return np.concatenate(obs)                                       # (steps * num_envs, C, Y, X)


def feature_check(run: Path, fresh: bool = False) -> dict:
    config = read_config(run)
    with envs.make(config.env, num_envs=1, seed=1) as probe:
        spec = agent_spec(config, probe)
    if spec.stem != "nature":
        raise SystemExit(f"{run}: stem {spec.stem!r}; this check reads the Nature stem only")
    params = init_agent(np.random.default_rng(config.seed), spec)
    frames = 0
    if not fresh:
        trees, meta = load_run_checkpoint(run, params, rmsprop_init(params))
        params, frames = trees["params"], meta["counters"]["frames"]
    a = frames_of(config.env).astype(np.float32) / 255               # (N, C, Y, X)
    out = {"frames_trained": frames}
    for k, (conv_p, (_, _, S)) in enumerate(zip(params.stem[:3], NATURE_CONVS), start=1):
        a = np.maximum(conv2d(conv_p, a, S, 0)[0], 0)                 # (N, D, OY, OX)
        out[f"conv{k}_dead_channels"] = float(1 - (a > 0).any(axis=(0, 2, 3)).mean())
        out[f"conv{k}_active"] = float((a > 0).mean())
    f = np.maximum(linear(params.stem.fc, a.reshape(len(a), -1))[0], 0)  # (N, F)
    out.update(fc_dead_units=float(1 - (f > 0).any(0).mean()), fc_mean=float(f.mean()),
               fc_std_between_frames=float(f.std(0).mean()))
    x = core_input(f, np.zeros(len(f), np.float32), np.zeros(len(f), bool), spec.reward_clip)  # (N, I)
    p = params.core.elstm
    z_pre = x @ p.W_z.T + p.b_z                                       # (N, H)
    c, cache = cell_step(p, x, np.zeros((len(x), p.W_z.shape[0]), np.float32))
    h, gate = out_gate(params.core.gate, x, c)                        # (N, H)
    out.update(z_pre_abs_median=float(np.median(np.abs(z_pre))),
               z_saturated=float((np.abs(cache.z_t) > 0.99).mean()),
               z_std_between_frames=float(cache.z_t.std(0).mean()), f_mean=float(cache.f_t.mean()),
               o_mean=float(gate.o_t.mean()), h_std_between_frames=float(h.std(0).mean()))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (config.json and checkpoint.npz)")
    parser.add_argument("--fresh", action="store_true", help="the run's network at initialisation")
    args = parser.parse_args(argv)
    for key, value in feature_check(args.run, args.fresh).items():
        print(f"{key:24s} {value:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
