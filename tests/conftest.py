"""Hypothesis profiles, registered once, and the opt-in bounds-checked run.

    dev   (default locally)  100 examples, random
    ci    (CI=true)          derandomized, no deadline, fewer examples
    audit (HYPOTHESIS_PROFILE=audit)  heavy: 1000 examples per property
    mutate (set by python -m verify mutate)  ci without shrinking failing examples

    pytest --boundscheck tests/test_kernels.py tests/r2ac/test_conv.py
        compiles every Numba kernel with bounds checks (NUMBA_BOUNDSCHECK=1, in a fresh kernel
        cache so checked and unchecked machine code never mix): an index bug raises IndexError
        in the failing test instead of reading or writing past an array. Slow (every kernel is
        compiled again): a release check, not part of the default run.
"""

import os
import tempfile

from hypothesis import HealthCheck, Phase, settings

_CI = dict(derandomize=True, deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow],
           print_blob=True)
settings.register_profile("ci", **_CI)
# mutation testing (python -m verify mutate) needs only whether a test fails: as ci, without shrinking
# the failing example or explaining it (neither turns a failure into a pass; shrinking took most of a
# killed mutant's time)
settings.register_profile("mutate", **_CI, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
settings.register_profile("dev", deadline=None, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("audit", deadline=None, max_examples=1000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_addoption(parser):
    parser.addoption("--boundscheck", action="store_true", default=False,
                     help="compile the Numba kernels with bounds checks (NUMBA_BOUNDSCHECK=1, fresh kernel cache)")


def pytest_configure(config):
    if config.getoption("--boundscheck"):
        os.environ["NUMBA_BOUNDSCHECK"] = "1"
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-boundscheck-")
        import numba

        numba.config.reload_config()
