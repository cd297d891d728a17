"""The staleness study (rtrl_ref/r2ac/staleness.py) and --inject-lag (rtrl_ref/r2ac/distributed.py).

The measurement rebuilds the state an actor lagging by k updates carries: at k = 0 it is the state
the synchronous learner carried (checked against the loop itself), at k > 0 it differs, and it
differs from nothing when the parameters never changed (the twin that shows the error comes from
the lag). The learner's gradient from traces rebuilt with the current parameters equals full-history
BPTT. --inject-lag is validated and makes the actors lag (policy_lag >= K in a real Ray run).
"""

import re
import sys

import numpy as np
import pytest

import envs
from rtrl_ref.r2ac.config import make_config
from rtrl_ref.r2ac.core import get_learner
from rtrl_ref.r2ac.loop import EnvOutput, collect_rollout, learner_step
from rtrl_ref.r2ac.network import agent_spec, init_agent
from rtrl_ref.r2ac.optim import rmsprop_init
from rtrl_ref.r2ac.staleness import carried_state, measure_window, record_and_measure, rollout_float64
from rtrl_ref.r2ac.tree import tree_map
from verify.compare import assert_detected, assert_fields_close, compare_fields

TINY = ["--env", "memory:cue?delay=3", "--num-envs", "4", "--unroll", "4", "--hidden", "6", "--backend", "numpy",
        "--no-progress"]


def synchronous_run(config, updates: int):
    """The loop's algorithm for `updates` updates: (spec, parameters that acted each rollout, the
    rollouts, the state the learner carried out of the last one)."""
    with envs.make(config.env, num_envs=config.num_envs, seed=config.seed) as env:
        spec = agent_spec(config, env)
        rng = np.random.default_rng(config.seed)
        params = init_agent(rng, spec)
        opt_state = rmsprop_init(params)
        B, T = config.num_envs, config.unroll
        state = get_learner("rtrl").init_state(B, spec.features + 1, spec.hidden, np.float32)
        obs, _ = env.reset()
        last = EnvOutput(obs, np.zeros(B, np.float32), np.ones(B, bool))
        acted, rollouts = [], []
        for update in range(1, updates + 1):
            rollout, last, _ = collect_rollout(env, spec, params, rng, last, state.c, T)
            acted.append(params), rollouts.append(rollout._replace(stem=None))
            params, opt_state, state, _ = learner_step(config, spec, params, opt_state, rollout, state,
                                                       (update - 1) * B * T, update)
    return spec, acted, rollouts, state


def test_lag_zero_rebuilds_what_the_synchronous_learner_carried_and_a_lag_does_not():
    # delay 12: episodes of 14 steps; the 7th rollout (steps 24-27) continues the episode that began
    # at step 14, so the carried state depends on rollouts 4-7, each acted with other parameters
    config = make_config(TINY + ["--lr", "1e-2", "--env", "memory:cue?delay=12"])
    spec, acted, rollouts, loop_state = synchronous_run(config, 7)
    assert not rollouts[-1].reset[:-1].any() and rollouts[3].reset[1:-1].any()
    spec = spec._replace(backend="numpy")
    as64 = [tree_map(lambda a: np.asarray(a, np.float64), p) for p in acted]
    rollouts = [rollout_float64(r) for r in rollouts]
    # the window is the whole run: the state carried into an 8th rollout (the loop's state out of the 7th)
    rebuilt = carried_state(spec, lambda j: as64[j], rollouts + rollouts[-1:])
    assert_fields_close("lag 0 vs the loop's carried state", rebuilt, loop_state, 1e-4)
    assert np.abs(rebuilt.traces.W_z).max() > 1e-3, "zero traces: the check would be vacuous"
    for name, version in [("lag 2", lambda j: as64[max(j - 2, 0)]), ("the current parameters", lambda j: as64[-1])]:
        wrong = carried_state(spec, version, rollouts + rollouts[-1:])
        assert_detected(compare_fields(f"{name} vs the loop's carried state", wrong, loop_state, 1e-4))


def test_trace_error_is_zero_at_lag_zero_positive_with_lag_and_the_reference_is_bptt():
    config = make_config(TINY + ["--lr", "1e-2", "--seed", "3"])
    study = record_and_measure(config, 16 * 14, window=5, lags=(0, 1, 4), points=2, log=lambda _: None)
    assert any(point["carried_fraction"] > 0 for point in study["points"]), "no gradient depends on the state"
    for point in study["points"]:
        k0, k1, k4 = point["lags"]
        assert point["check_rtrl_vs_bptt"] < 1e-10, point
        assert k0["trace_vs_sync"] == 0 and k0["cell_vs_sync"] == 0, k0
        for row in (k1, k4):
            assert row["trace_vs_sync"] > 1e-6 and row["param_drift"] > 1e-4, row
        if point["carried_fraction"] > 0:
            assert k0["grad_vs_sync"] == 0 and k1["grad_vs_sync"] > 1e-6 and k4["grad_vs_sync"] > 1e-6, point
        else:                                           # every episode starts with the rollout: no dependence
            assert k1["grad_vs_sync"] is None, point
        assert k0["trace_vs_current"] > 0, "learning moved the parameters: the synchronous traces are stale too"


def test_without_parameter_change_every_lag_has_zero_error():
    """The twin: the same history, parameters frozen (every version the same) -> every error 0."""
    config = make_config(TINY + ["--seed", "4"])
    spec, acted, rollouts, _ = synchronous_run(config, 5)
    frozen = measure_window(config, spec, [acted[0]] * 8, rollouts, lags=(0, 3))
    assert frozen["check_rtrl_vs_bptt"] < 1e-10
    for row in frozen["lags"]:
        assert row["trace_vs_current"] < 1e-12 and row["grad_vs_bptt"] < 1e-10 and row["param_drift"] == 0, row
    moving = measure_window(config, spec, [acted[0]] * 3 + acted, rollouts, lags=(0, 3))
    assert moving["lags"][1]["trace_vs_sync"] > 1e-6, moving


@pytest.mark.parametrize("flags, message", [
    (["--actors", "1", "--inject-lag", "-1"], "inject_lag: expected an integer >= 0, got -1"),
    (["--inject-lag", "3"], "inject_lag: expected 0 without actors (only --actors >= 1 acts with older "
                            "parameters), got 3 with actors 0"),
])
def test_bad_inject_lag_is_refused_in_one_line(flags, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_config(TINY + flags)


try:
    import ray
except ImportError:
    ray = None


@pytest.mark.distributed
@pytest.mark.skipif(ray is None, reason="needs ray (pip install 'rtrl_ref[distributed]')")
@pytest.mark.skipif(sys.platform == "win32", reason="a local Ray")
def test_injected_lag_is_honoured(tmp_path):
    from rtrl_ref.r2ac.distributed import train
    from rtrl_ref.r2ac.runs import read_log

    K = 3
    summary = train(make_config(TINY + ["--actors", "1", "--inject-lag", str(K), "--log-every", "1",
                                        "--total-frames", "192", "--run-dir", str(tmp_path), "--run-name", "r"]))
    assert summary.updates == 12
    log = read_log(tmp_path / "r")
    lag, updates = np.array(log["policy_lag"]), np.array(log["updates"])
    assert np.all(lag[updates > K] >= K), list(zip(updates, lag))
    assert np.all(lag[updates <= K] == updates[updates <= K] - 1), "before K updates: the initial parameters act"


def test_actor_cost_benchmark_measures_and_predicts(tmp_path):
    import json

    from rtrl_ref.bench.actors import main as bench_main
    from rtrl_ref.bench.actors import predict

    out = tmp_path / "a.json"
    assert bench_main(TINY[:-1] + ["--repeats", "1", "--envs-per-actor", "2", "--predict", "2,8", "--out",
                                   str(out)]) == 0
    result = json.loads(out.read_text())["rows"][0]
    m = result["measured"]
    assert m["c_actor"] > m["c_env"] > 0 and m["c_learn"] > 0 and m["c_adv"] > 0
    assert m["S_r"] > m["obs_bytes"] + m["trace_bytes"] and m["trace_bytes"] == 4 * 2 * (2 * 6 * 5 + 4 * 6)
    assert [r["N"] for r in result["predicted"]] == [2, 8]
    # the model by hand: 4 actors of 1 environment at 100 steps/s each; a learner of 1000 steps/s
    # taking 8 rollouts of 10 steps per update: 400 steps/s, 40 rollouts/s (in: 40 x 1 MB; out:
    # 40 parameter pulls of 2 MB), 5 updates/s; each request waits 4 / 8 updates
    row = predict(dict(c_actor=0.01, c_learn=0.001, S_r=1e6, S_p=2e6), N=4, B=8, b=1, T=10)
    assert row["rate"] == pytest.approx(400) and row["learner_utilisation"] == pytest.approx(0.4)
    assert row["updates_per_s"] == pytest.approx(5) and row["rollout_bytes_per_s"] == pytest.approx(4e7)
    assert row["broadcast_bytes_per_s"] == pytest.approx(8e7) and row["policy_lag"] == pytest.approx(0.5)
    assert predict(dict(c_actor=0.01, c_learn=0.001, S_r=1, S_p=1), N=16, B=8, b=1, T=10)["rate"] == \
        pytest.approx(1000)
