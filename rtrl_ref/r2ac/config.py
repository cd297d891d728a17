"""Training configuration: one typed dataclass, presets, the command-line parser built from it,
and the config's JSON round trip (config.json of a run folder, validation on load, resume).

Every field carries its own one-line help (the `help` metadata), which is what `--help` prints.
Presets change several fields at once; explicit command-line flags win over a preset. Without
--preset, an environment family gets its default preset (FAMILY_DEFAULTS); the preset a run
applied is stored in its `preset` field, printed at the start of the run and written to
config.json (`preset_applied`, with the values it set).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rtrl_ref.kernels import BACKENDS
from rtrl_ref.params import FORGET_INITS
from rtrl_ref.r2ac.cli import ArgumentParser
from rtrl_ref.r2ac.core import CELL_INITS, CORES, LEARNERS, STEM_GRADS, get_learner, get_stem_grad
from rtrl_ref.r2ac.stems import STEMS

STEM_NAMES = ("auto", *STEMS)
CONFIG_FILE = "config.json"


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class Config:
    env: str = _f("memory:cue?delay=8", "environment spec (envs.make), e.g. atari:Breakout, procgen:chaser, "
                  "gym:CartPole-v1, memory:cue?delay=40")
    learner: str = _f("rtrl", "eLSTM gradient: rtrl (exact, untruncated), tbptt (cut at the unroll start) or "
                      "feedforward", choices=tuple(LEARNERS))
    cell: str = _f("elstm", "recurrent core: elstm (eLSTM + output gate, the paper's) or a cell with diagonal "
                   "recurrence whose state the heads read (indrnn, mingru, lru: Re of its complex state); with "
                   "--backend numba the rtrl learner runs the cells' fused step kernels, otherwise their NumPy "
                   "drivers; their initialisation is --cell-init (the forget-gate options apply to the eLSTM only)",
                   choices=tuple(CORES))
    layers: int = _f(1, "stacked eLSTM layers (cell elstm only): layer 1 reads the core input, layer l > 1 the "
                     "cell of layer l - 1, the output gate the top layer's cell; rtrl carries the exact stacked "
                     "traces, dense across layers (rtrl_ref.stacked, NumPy: --backend does not apply)")
    stem: str = _f("auto", "observation encoder: nature (CNN), impala (deep ResNet), mlp, identity (vectors "
                   "straight into the eLSTM); auto = nature for pixels, mlp for vectors", choices=STEM_NAMES)
    stem_grad: str = _f("tbptt", "gradient into the stem: tbptt (through the eLSTM inside the unroll), "
                        "immediate (one step) or frozen", choices=tuple(STEM_GRADS))
    preset: str = _f("", "preset applied before the flags (see the list below); empty = the environment "
                     "family's default preset")
    seed: int = _f(0, "seed of parameters, environments and action sampling (one place)")
    total_frames: int = _f(400_000, "training budget in agent steps summed over environments (each update "
                           "adds unroll * num_envs)")
    num_envs: int = _f(16, "environments stepped together (the batch B)")
    unroll: int = _f(8, "unroll length M: loss steps per update (and TBPTT span)")
    hidden: int = _f(32, "eLSTM hidden units H")
    forget_init: str = _f("constant", "eLSTM forget-gate bias at initialisation: constant (b_f ~ N(forget_bias, "
                          "0.1^2); the paper's with forget_bias 0) or chrono (b_f = log U(1, chrono_t_max - 1): "
                          "memory times spread over [2, chrono_t_max])", choices=FORGET_INITS)
    forget_bias: float = _f(0.0, "with --forget-init constant: added to the forget-gate bias (f = sigmoid(b_f) "
                            "~ 0.5 at 0)")
    chrono_t_max: float = _f(100.0, "with --forget-init chrono or --cell-init chrono: the longest characteristic "
                             "memory time, in steps")
    cell_init: str = _f("own", "initialisation of --cell indrnn, lru or mingru: own (the cell's paper's) or chrono "
                        "(its recurrence set to memory times tau ~ U(2, chrono_t_max): u, |lambda| or "
                        "1 - sigmoid(b_z) = 1 - 1/tau, as chrono does for the eLSTM's forget gate)",
                        choices=CELL_INITS)
    features: int = _f(64, "width of the stem's output (the core input is features + 1 clipped reward)")
    stem_init: str = _f("pytorch", "stem initialisation: pytorch (fan-in uniform, the paper's code) or he "
                        "(variance-preserving through ReLUs, zero biases)", choices=("pytorch", "he"))
    lr: float = _f(2e-3, "RMSProp learning rate, decayed linearly to 0 over total_frames")
    rms_alpha: float = _f(0.99, "RMSProp smoothing constant")
    rms_eps: float = _f(0.01, "RMSProp epsilon, added outside the square root")
    rms_bias_correction: bool = _f(False, "divide RMSProp's running average of g^2 by 1 - alpha^k at update k "
                                   "(as Adam does); without it, with a small eps, the first update moves every "
                                   "weight by about 10 lr")
    grad_clip: float = _f(40.0, "global gradient-norm clip (all gradients, RTRL ones included)")
    discount: float = _f(0.99, "discount gamma")
    baseline_cost: float = _f(0.5, "weight of the baseline loss 0.5 * sum (v_s - V)^2")
    entropy_cost: float = _f(0.01, "weight of the negative-entropy loss")
    reward_clip: float = _f(1.0, "rewards are clipped to [-reward_clip, reward_clip] in the loss and the core input")
    reuse_stem: bool = _f(True, "the learner reuses the acting pass's stem activations (the parameters have not "
                          "changed since acting); --no-reuse-stem runs the stem again (same numbers to round-off)")
    blas_threads: int = _f(1, "BLAS threads for the learner (1 avoids thread pools spinning against the "
                           "environments and Numba; 0 = library default)")
    backend: str = _f("numba", "kernels of the eLSTM forward, BPTT and RTRL: numpy (reference), numba (CPU "
                      "default), cupy", choices=BACKENDS)
    run_dir: str = _f("runs", "parent folder of run folders")
    run_name: str = _f("", "run folder name (default: env-learner-seed-time)")
    checkpoint_minutes: float = _f(5.0, "minutes between atomic checkpoints (one is always written at the end)")
    log_every: int = _f(10, "updates between CSV log rows")
    resume: str = _f("", "run folder to resume (parameters, optimizer, counters, RNG; environments restart)")
    progress: bool = _f(True, "show a progress bar")
    exp_name: str = _f("", "experiment tag: prefixes the run folder's name and is stored in config.json")
    tensorboard: bool = _f(False, "also write TensorBoard event files (run folder/tensorboard; needs the "
                           "tensorboard extra: pip install tensorboardX)")
    eval_every: int = _f(0, "updates between evaluations (eval_episodes fresh episodes, sampled actions; "
                         "eval_return column of log.csv); 0 = never")
    eval_episodes: int = _f(10, "episodes per evaluation of --eval-every")
    actors: int = _f(0, "Ray actors that act in parallel with the learner (rtrl_ref.r2ac.distributed; needs the "
                     "distributed extra); each owns num_envs / actors environments and the learner batches "
                     "`actors` rollouts per update; 0 = the synchronous loop")
    ray_address: str = _f("", "with --actors: address of a running Ray cluster to join (e.g. auto or "
                          "host:6379); empty = start a local Ray with this machine's cores")
    rollouts_in_flight: int = _f(1, "with --actors: rollout requests queued per actor (backpressure: an actor "
                                 "acts at most this many rollouts ahead of the learner)")
    inject_lag: int = _f(0, "with --actors: the actors act with the parameters K updates older than the newest "
                         "(an injected policy lag on top of the natural one, for the staleness study "
                         "rtrl_ref.r2ac.staleness); 0 = the newest")


PRESETS: dict[str, dict] = {
    # the default: memory tasks whose span exceeds the unroll (4), the observation fed straight
    # into the eLSTM so that every recurrent weight gets exact RTRL. Two settings, both measured on
    # memory:cue (docs/results/memory-span-sweep): chrono initialisation of the forget gate (memory
    # times spread over [2, 100] steps; with a constant forget bias of 1 instead, delay 16 was
    # learned but delay 32 stayed at chance for 1.5M frames) and RMSProp eps 1e-5 (with eps 0.01
    # and a loss summed over only 64
    # samples, most RMS gradients are far below eps and the weights barely move: delay 32 stayed at
    # chance for 1.5M frames with chrono, and learned in 0.4M with eps 1e-5)
    "cpu-memory": dict(num_envs=16, unroll=4, hidden=32, stem="identity", lr=2e-3,
                       forget_init="chrono", chrono_t_max=100.0, rms_eps=1e-5, total_frames=600_000),
    # POPGym: the memory family's settings with unroll 2 (POPGym's tasks score every step, so a short
    # unroll gives many updates), measured on eight Easy tasks (docs/results/popgym/table) after
    # RepeatPreviousEasy (docs/results/popgym/repeat-previous-chrono: chrono and eps 1e-5 took rtrl from
    # -0.395 to 0.341 where chance is -0.5)
    "cpu-popgym": dict(num_envs=16, unroll=2, hidden=32, stem="identity", lr=2e-3,
                       forget_init="chrono", chrono_t_max=100.0, rms_eps=1e-5, total_frames=2_000_000),
    # Atari on this 2-core CPU: Nature stem, short unroll, small core. Two changes from the
    # paper's optimiser/initialisation, both measured on Breakout (docs/results/atari-breakout):
    # - He initialisation of the stem: with PyTorch's default the features vary by 2e-4 over time
    #   at init and a 420k-frame run never left the uniform policy;
    # - RMSProp eps 1e-5 instead of 0.01: the loss is a sum over T*B = 160 samples here (1600 in
    #   the paper), and after 118k frames the RMS gradient of 87-99% of the stem and core weights
    #   was below 0.01 (stem FC median 2e-6), so eps = 0.01 froze them (steps of lr * g / eps)
    # - RMSProp's bias correction: without it the first update moved every weight by ~10 lr, the
    #   stem features' mean grew 5x and 54% of the eLSTM's z saturated; the stem and core gradients
    #   then fell to 0.1 and 0.5 (heads 20-30) and the baseline explained nothing (docs/results/atari-breakout)
    "cpu-atari": dict(num_envs=8, unroll=20, hidden=64, features=256, stem="nature", lr=6e-4,
                      stem_init="he", rms_eps=1e-5, rms_bias_correction=True, total_frames=2_000_000),
    # the paper's settings (Irie et al. 2024, R2AC experiments and their training scripts): B = 32, IMPALA
    # stem, unroll 50 (100 on DMLab), hidden 256 (512 on DMLab), RMSProp lr 6e-4, eps 0.01
    "paper-atari": dict(num_envs=32, unroll=50, hidden=256, features=256, stem="impala", lr=6e-4,
                        stem_init="pytorch", forget_init="constant", rms_eps=0.01, total_frames=200_000_000),
    "paper-procgen": dict(env="procgen:chaser", num_envs=32, unroll=50, hidden=256, features=256,
                          stem="impala", lr=6e-4, stem_init="pytorch", forget_init="constant", rms_eps=0.01,
                          total_frames=200_000_000),
    "paper-dmlab": dict(env="dmlab:rooms_watermaze", num_envs=32, unroll=100, hidden=512, features=256,
                        stem="impala", lr=6e-4, stem_init="pytorch", forget_init="constant", rms_eps=0.01,
                        total_frames=100_000_000),
}

# The preset an environment family gets when --preset is not given (other families get none).
FAMILY_DEFAULTS: dict[str, str] = {"memory": "cpu-memory", "popgym": "cpu-popgym", "atari": "cpu-atari",
                                   "procgen": "cpu-atari", "dmlab": "cpu-atari"}


# ----------------------------------------------------------------------------- command line

class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks (the preset table)."""


def presets_help() -> str:
    """The --help epilog: every preset's values and the family defaults."""
    lines = ["presets (applied before the flags; an explicit flag wins over its preset):"]
    for name, values in PRESETS.items():
        lines.append(f"  {name:14s} " + " ".join(f"{k}={v}" for k, v in values.items()))
    families = ", ".join(f"{family} -> {name}" for family, name in FAMILY_DEFAULTS.items())
    lines += ["", textwrap.fill(f"default preset of each environment family when --preset is not given: "
                                f"{families}; other families (gym, minigrid, ...) get no preset: the defaults "
                                "above apply.", width=100)]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m rtrl_ref.train",
        description="Train a real-time recurrent actor-critic (R2AC) with an eLSTM core.",
        epilog=presets_help(), formatter_class=_HelpFormatter)
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        kw = dict(help=f"{f.metadata['help']} (default: {f.default!r}{_preset_note(f.name)})",
                  default=argparse.SUPPRESS)
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
        if kind is int:
            kind = _int_with_underscores
        parser.add_argument(flag, type=kind, choices=f.metadata.get("choices"), **kw)
    return parser


def _preset_note(name: str) -> str:
    """'; presets: cpu-memory 4, cpu-atari 20' for a field that presets set (--help shows it)."""
    values = [f"{preset} {settings[name]!r}" for preset, settings in PRESETS.items() if name in settings]
    return "; presets: " + ", ".join(values) if values else ""


def _int_with_underscores(text: str) -> int:
    try:
        return int(float(text)) if "e" in text.lower() else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def preset_for(env: str, preset: str = "") -> str:
    """The preset a run applies: --preset if given, else its environment family's default ('' = none)."""
    if preset and preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    return preset or FAMILY_DEFAULTS.get(env.split(":", 1)[0], "")


def make_config(argv: list[str] | None = None, **overrides) -> Config:
    """Defaults <- preset (--preset, else the family's default) <- explicit flags <- overrides.

    The returned config's `preset` names the preset that was applied.
    """
    flags = vars(build_parser().parse_args(argv if argv is not None else []))
    flags.update(overrides)
    if flags.get("resume"):
        return resume_config(flags)
    preset = preset_for(flags.get("env", Config.env), flags.get("preset", ""))
    values: dict = dict(PRESETS.get(preset, {}))
    values.update(flags)
    values["preset"] = preset
    config = Config(**values)
    validate_config(config)
    return config


def validate_config(c: Config) -> None:
    get_learner(c.learner)
    if isinstance(c.layers, bool) or not isinstance(c.layers, int) or c.layers < 1:
        raise ValueError(f"layers: expected an integer >= 1, got {c.layers!r}")
    if c.cell_init != "own" and c.cell == "elstm":
        raise ValueError(f"cell_init: expected own with cell elstm (the eLSTM's is forget_init), got {c.cell_init}")
    if c.layers > 1 and c.cell != "elstm":
        raise ValueError(f"layers: expected 1 with cell {c.cell} (only elstm layers stack), got {c.layers}")
    get_stem_grad(c.stem_grad)
    if c.env.split("?", 1)[0] == "memory:copy":
        raise ValueError("env: memory:copy is the supervised copy task, not an environment of this trainer; "
                         "run it with python -m rtrl_ref.copy_task (see its --help)")
    if c.seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {c.seed}")
    if not c.checkpoint_minutes >= 0:
        raise ValueError(f"checkpoint_minutes: expected a number >= 0 (0 = after every update), got "
                         f"{c.checkpoint_minutes}")
    if c.eval_every < 0 or c.eval_episodes < 1:
        raise ValueError(f"eval_every, eval_episodes: expected integers >= 0 and >= 1, got {c.eval_every} and "
                         f"{c.eval_episodes}")
    if c.actors < 0:
        raise ValueError(f"actors: expected an integer >= 0 (0 = the synchronous loop), got {c.actors}")
    if c.actors and c.num_envs % c.actors:
        raise ValueError(f"num_envs, actors: expected num_envs divisible by actors (each actor owns num_envs / "
                         f"actors environments), got {c.num_envs} and {c.actors}")
    if c.rollouts_in_flight < 1:
        raise ValueError(f"rollouts_in_flight: expected a positive integer, got {c.rollouts_in_flight}")
    if isinstance(c.inject_lag, bool) or not isinstance(c.inject_lag, int) or c.inject_lag < 0:
        raise ValueError(f"inject_lag: expected an integer >= 0, got {c.inject_lag!r}")
    if c.inject_lag and not c.actors:
        raise ValueError(f"inject_lag: expected 0 without actors (only --actors >= 1 acts with older parameters), "
                         f"got {c.inject_lag} with actors 0")
    if c.blas_threads < 0:
        raise ValueError(f"blas_threads: expected an integer >= 0, got {c.blas_threads}")
    for name in ("total_frames", "num_envs", "unroll", "hidden", "features", "log_every"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {getattr(c, name)}")
    for name in ("lr", "rms_eps", "grad_clip", "reward_clip"):
        if not getattr(c, name) > 0:
            raise ValueError(f"{name}: expected a positive number, got {getattr(c, name)}")
    if not 0 <= c.discount <= 1:
        raise ValueError(f"discount: expected a value in [0, 1], got {c.discount}")


def describe_config(config: Config) -> str:
    """The resolved configuration, one `name value` line per field, printed at the start of a run."""
    values = PRESETS.get(config.preset, {})
    applied = f"preset {config.preset}: " + " ".join(f"{k}={v}" for k, v in values.items()) if config.preset \
        else "no preset"
    width = max(len(f.name) for f in dataclasses.fields(Config))
    rows = [f"  {f.name:{width}s}  {getattr(config, f.name)}" for f in dataclasses.fields(Config)]
    return "\n".join([f"configuration ({applied}; explicit flags win):", *rows])


# ----------------------------------------------------------------------------- config.json

RESUMABLE = ("total_frames", "progress", "checkpoint_minutes", "log_every", "backend", "blas_threads", "reuse_stem",
             "tensorboard", "eval_every", "eval_episodes", "actors", "ray_address", "rollouts_in_flight",
             "inject_lag")


def write_config(run_dir: Path, config: Config, git_revision: str = "unknown") -> None:
    """Write run_dir/config.json atomically: the config, the preset it applied and the git revision."""
    applied = dict(name=config.preset, values=PRESETS.get(config.preset, {}))
    data = dict(config=dataclasses.asdict(config), preset_applied=applied, git_revision=git_revision)
    tmp = Path(run_dir) / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, Path(run_dir) / CONFIG_FILE)


class RunRecord(NamedTuple):
    """The contents of a run's config.json."""

    config: Config
    preset_applied: dict       # {"name": preset name or "", "values": the fields it set}
    git_revision: str


def read_run_record(run_dir: Path) -> RunRecord:
    """config.json of a run folder, validated; ValueError naming the folder if it has none or a bad one."""
    file = Path(run_dir) / CONFIG_FILE
    if not file.exists():
        raise ValueError(f"resume: {run_dir} is not a run folder (no {CONFIG_FILE})")
    try:
        data = json.loads(file.read_text())
        config = Config(**data["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"resume: {file} is not a valid run config ({err})") from None
    validate_config(config)
    applied = data.get("preset_applied", dict(name=config.preset, values=PRESETS.get(config.preset, {})))
    return RunRecord(config, applied, data.get("git_revision", "unknown"))


def read_config(run_dir: Path) -> Config:
    """The validated config of a run folder."""
    return read_run_record(run_dir).config


def resume_config(flags: dict) -> Config:
    """The saved config of the run, with the few flags that may change on resume."""
    saved = read_config(flags["resume"])
    changed = {k: v for k, v in flags.items() if k in RESUMABLE}
    refused = sorted(k for k, v in flags.items() if k not in RESUMABLE + ("resume",) and v != getattr(saved, k))
    if refused:
        raise ValueError(f"resume: options {refused} differ from the saved run's config; only "
                         f"{list(RESUMABLE)} may change when resuming")
    config = dataclasses.replace(saved, resume=flags["resume"], **changed)
    validate_config(config)
    return config
