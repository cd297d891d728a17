"""scripts/gpu_check.py imports and runs its CPU-side parts (the GPU run is a prepared script)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from verify import broken, checks

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_negative_twins_of_the_script_detect_their_bugs(gpu_check):
    ok = gpu_check.twin("fine kernel", checks.check_backend_step("numpy", 2, 3, 4, np.float64, 0, "every"))
    bad = gpu_check.twin("skipped reset", checks.check_backend_step(
        broken.backend_skipping_reset("numpy"), 2, 3, 4, np.float64, 0, "every"))
    assert not ok["ok"] and bad["ok"]


def test_unavailable_backend_exits_2_with_a_report(gpu_check, tmp_path):
    cupy_ok = importlib.util.find_spec("cupy") is not None
    if cupy_ok:
        pytest.skip("cupy is installed here")
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--out", str(out)]) == 2
    assert "cupy backend: " in json.loads(out.read_text())["error"]
