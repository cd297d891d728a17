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
