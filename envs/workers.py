"""One single environment per worker process, all stepped in lock-step.

Used by the DMLab family (one `deepmind_lab.Lab` per process, as in IMPALA). Workers are
started with the 'spawn' (default) or 'forkserver' method, never 'fork': once Numba's OpenMP
threading layer has run a parallel kernel in the parent, a forked child dies.

A pool never hangs: every reply is awaited with a deadline while the worker's liveness is
checked, and a dead, hung or failing worker raises `WorkerError` naming the worker, its exit
code or its traceback. `InProcessPool` has the same interface without processes (tests, fakes).
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

SAFE_START_METHODS = ("spawn", "forkserver")


class WorkerError(RuntimeError):
    """A worker process died, hung past its timeout or raised."""


def _serve(conn: Any, factory: Callable[[], Any]) -> None:
    """Worker process main loop: build the env, then run (method, args) requests."""
    try:
        env = factory()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", None))
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, KeyboardInterrupt):      # parent gone or interrupted: stop quietly
            break
        if method == "close":
            break
        try:
            conn.send(("ok", getattr(env, method)(*args)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))
            break
    try:
        env.close()
    finally:
        conn.close()


class ProcessPool:
    """`len(factories)` worker processes, each holding the env its (picklable) factory builds."""

    def __init__(self, factories: Sequence[Callable[[], Any]], *, start_method: str = "spawn",
                 timeout: float = 300.0, start_timeout: float = 600.0,
                 name: str = "env") -> None:
        if start_method not in SAFE_START_METHODS:
            raise ValueError(f"start_method: expected one of {SAFE_START_METHODS} (fork is "
                             f"unsafe once Numba's OpenMP layer has run), got {start_method!r}")
        self.timeout, self.name = timeout, name
        self._ctx = multiprocessing.get_context(start_method)
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        try:
            for index, factory in enumerate(factories):
                parent_end, child_end = self._ctx.Pipe()
                proc = self._ctx.Process(target=_serve, args=(child_end, factory), daemon=True,
                                         name=f"{name}-worker-{index}")
                proc.start()
                child_end.close()
                self._conns.append(parent_end)
                self._procs.append(proc)
            for index in range(len(self._procs)):
                self._receive(index, "start", start_timeout)
        except BaseException:
            self.close()
            raise

    @property
    def start_method(self) -> str:
        return self._ctx.get_start_method()

    def call(self, method: str, args: Sequence[tuple]) -> list[Any]:
        """Run `env.method(*args[i])` in worker i, all at once; return the results in order."""
        for index, (conn, arg) in enumerate(zip(self._conns, args, strict=True)):
            try:
                conn.send((method, arg))
            except (BrokenPipeError, OSError):
                raise self._dead(index, method) from None
        return [self._receive(index, method) for index in range(len(self._conns))]

    def _receive(self, index: int, method: str, timeout: float | None = None) -> Any:
        conn, proc = self._conns[index], self._procs[index]
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not conn.poll(0.05):
            if not proc.is_alive() and not conn.poll(0):
                raise self._dead(index, method)
            if time.monotonic() > deadline:
                proc.terminate()                  # hung: it will not answer close() either
                raise WorkerError(f"{self.name} worker {index} did not answer {method}() within "
                                  f"{timeout} s (hung); raise the timeout if the engine is "
                                  "just slow")
        try:
            status, payload = conn.recv()
        except (EOFError, OSError):
            raise self._dead(index, method) from None
        if status == "error":
            raise WorkerError(f"{self.name} worker {index} failed in {method}():\n{payload}")
        return payload

    def _dead(self, index: int, method: str) -> WorkerError:
        proc = self._procs[index]
        proc.join(timeout=1.0)
        return WorkerError(f"{self.name} worker {index} (pid {proc.pid}) died during "
                           f"{method}() with exit code {proc.exitcode}")

    @property
    def processes(self) -> tuple[Any, ...]:
        """The worker processes (empty once closed)."""
        return tuple(self._procs)

    def close(self) -> None:
        """Ask every worker to close its env, then end the ones that do not stop in time."""
        for conn in self._conns:
            try:
                conn.send(("close", ()))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5.0)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []


class InProcessPool:
    """The ProcessPool interface over envs held in this process (no isolation, no timeouts)."""

    start_method = None

    def __init__(self, factories: Sequence[Callable[[], Any]]) -> None:
        self._envs: list[Any] = []
        try:
            for factory in factories:
                self._envs.append(factory())
        except BaseException:
            self.close()
            raise

    def call(self, method: str, args: Sequence[tuple]) -> list[Any]:
        return [getattr(env, method)(*arg) for env, arg in zip(self._envs, args, strict=True)]

    processes: tuple[Any, ...] = ()

    def close(self) -> None:
        for env in self._envs:
            env.close()
        self._envs = []
