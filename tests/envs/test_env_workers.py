"""Worker processes: crashes, hangs and failures raise clear errors, never hang; envs close on
exceptions; workers start safely after Numba's OpenMP layer has run."""

import multiprocessing
import time

import numpy as np
import pytest

import envs
from envs.dmlab_fake import FakeLab
from envs.workers import ProcessPool, WorkerError


def fake_env(**config):
    return envs.make("dmlab:rooms_watermaze", num_envs=2, seed=0, lab_factory=FakeLab,
                     config={k: str(v) for k, v in config.items()}, timeout=20.0)


def test_a_crashed_worker_raises_and_the_env_closes():
    env = fake_env(fakeCrashAfterSteps=2)
    env.reset()
    processes = env._pool.processes
    env.step(np.zeros(2, np.int64))
    with pytest.raises(WorkerError, match=r"dmlab worker 0 .* died during step\(\) with exit "
                                          r"code 3"):
        env.step(np.zeros(2, np.int64))
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(2, np.int64))


def test_a_hung_worker_times_out_instead_of_hanging():
    env = envs.make("dmlab:rooms_watermaze", num_envs=1, lab_factory=FakeLab, timeout=0.5,
                    config={"fakeHangAfterSteps": "1"})
    env.reset()
    processes = env._pool.processes
    started = time.monotonic()
    with pytest.raises(WorkerError, match=r"did not answer step\(\) within 0.5 s"):
        env.step(np.zeros(1, np.int64))
    assert time.monotonic() - started < 15
    assert not any(p.is_alive() for p in processes)


def test_a_failing_engine_reports_the_worker_traceback():
    with pytest.raises(WorkerError, match=r"(?s)worker 0 failed in start\(\).*ValueError: "
                                          r"FakeLab: cannot load level 'contributed/dmlab30/"):
        fake_env(fakeFailToLoad=1)


def test_an_exception_inside_with_closes_the_workers():
    with pytest.raises(ZeroDivisionError):
        with fake_env() as env:
            env.reset()
            processes = env._pool.processes
            assert all(p.is_alive() for p in processes)
            raise ZeroDivisionError("an error inside the with block")
    assert not any(p.is_alive() for p in processes)


def test_forkserver_workers_give_the_same_stream(contract):
    with fake_env() as env:
        expected = contract.run(env, steps=5)
    with envs.make("dmlab:rooms_watermaze", num_envs=2, seed=0, lab_factory=FakeLab,
                   start_method="forkserver") as env:
        assert env._pool.start_method == "forkserver"
        contract.assert_same_stream(contract.run(env, steps=5), expected, "forkserver")


def test_fork_is_refused():
    with pytest.raises(ValueError, match=r"start_method: expected one of \('spawn', "
                                         r"'forkserver'\).*got 'fork'"):
        ProcessPool([], start_method="fork")


numba = pytest.importorskip("numba")


@numba.njit(parallel=True, cache=True)
def parallel_sum(x):
    total = 0.0
    for i in numba.prange(x.shape[0]):
        total += x[i]
    return total


class NumbaWorker:
    """A worker env whose step runs a parallel Numba kernel (what a forked child cannot do)."""

    def step(self, n):
        return parallel_sum(np.ones(n))

    def close(self):
        pass


def _fork_child_runs_kernel():
    parallel_sum(np.ones(100))


@pytest.mark.filterwarnings("ignore:This process .* use of fork:DeprecationWarning")
def test_spawned_workers_run_parallel_numba_after_the_parent_did():
    assert parallel_sum(np.ones(1000)) == 1000.0          # the parent starts its thread pool
    if numba.threading_layer() == "omp":                 # negative twin: fork is really unsafe
        child = multiprocessing.get_context("fork").Process(target=_fork_child_runs_kernel)
        child.start()
        child.join(30)
        if child.is_alive():
            child.kill()
        assert child.exitcode != 0, "a forked child survived OpenMP: the hazard is gone?"
    pool = ProcessPool([NumbaWorker], timeout=120)
    try:
        assert pool.start_method == "spawn"
        assert pool.call("step", [(10,)]) == [10.0]
    finally:
        pool.close()
