"""The notebooks run top to bottom (with CI set, which shrinks their loops) and say what they
claim: every check they print passes and the deliberately wrong gradient is caught."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook extra not installed (pip install -e .[notebooks])")
nbclient = pytest.importorskip("nbclient", reason="notebook extra not installed (pip install -e .[notebooks])")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _run(path: Path, monkeypatch) -> str:
    monkeypatch.setenv("CI", "true")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_rtrl_for_the_elstm.ipynb", "02_promise_and_limits.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    text = _run(path, monkeypatch)
    assert "FAIL" not in text and "NOT caught" not in text, text
    if path.stem.startswith("01"):
        assert text.count(" ok") >= 12 and "caught" in text, text
    else:
        assert "evaluation return" in text and "ratio:" in text, text
        # the second-layer cost is measured: every committed L = 2 row carries exactly (2I + 6) H^2 + (2I + 8) H
        # float32 numbers, and the fresh run's traces equal trace_bytes for L = 1, 2, 3
        assert text.count("== 4 ((2I + 6) H^2 + (2I + 8) H): ok") >= 3, text
        fresh = [line for line in text.splitlines() if "trace_bytes says" in line]
        assert {line.split(",")[0] for line in fresh} == {"L = 1", "L = 2", "L = 3"}, text
        assert all(": ok;" in line for line in fresh), text
        assert "largest H in 24 GiB" in text, text
