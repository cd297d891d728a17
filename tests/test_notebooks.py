"""The notebooks run top to bottom (with CI set, which shrinks their loops) and say what they
claim: every check they print passes and every deliberately wrong input is caught."""

import re
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


def _line(text: str, prefix: str) -> str:
    """The one printed line that starts with prefix."""
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"expected one line starting with {prefix!r}, got {lines}\n{text}"
    return lines[0]


def _no_failure(text: str) -> None:
    assert "FAIL" not in text and "NOT caught" not in text, text


def check_01(text: str) -> None:
    _no_failure(text)
    assert text.count(" ok") >= 12 and "caught" in text, text


def check_02(text: str) -> None:
    _no_failure(text)
    assert "evaluation return" in text and "ratio:" in text, text
    # the second-layer cost is measured: every committed L = 2 row carries exactly (2I + 6) H^2 + (2I + 8) H
    # float32 numbers, and the fresh run's traces equal trace_bytes for L = 1, 2, 3
    assert text.count("== 4 ((2I + 6) H^2 + (2I + 8) H): ok") >= 3, text
    fresh = [line for line in text.splitlines() if "trace_bytes says" in line]
    assert {line.split(",")[0] for line in fresh} == {"L = 1", "L = 2", "L = 3"}, text
    assert all(": ok;" in line for line in fresh), text
    assert "largest H in 24 GiB" in text, text


def check_03(text: str) -> None:
    _no_failure(text)
    for claim in ("V-trace matches the slow reference, targets v_s",
                  "V-trace matches the slow reference, advantages A_s",
                  "d loss / d logits vs finite differences", "d loss / d values vs finite differences",
                  "immediate gradient g_c", "rtrl gradient == full-history BPTT"):
        assert ": ok" in _line(text, claim), text
    for wrong in ("off-by-one in the discounts", "policy gradient without -pi", "g_c without the gate's path"):
        assert _line(text, wrong).endswith("-> caught"), text
    # every learner step of the rtrl learner equals full-history BPTT to round-off; tbptt's differs after the first
    per_unroll = [line for line in text.splitlines() if line.startswith("unroll ")]
    assert len(per_unroll) >= 3, text
    rtrl = [float(re.search(r"worst relative difference (\S+);", line).group(1)) for line in per_unroll]
    assert max(rtrl) < 1e-10, text
    tbptt = float(re.search(r"relative difference up to (\S+) after", _line(text, "tbptt differs:")).group(1))
    assert tbptt > 1e-2, text
    for learner in ("rtrl", "tbptt"):
        assert "evaluation return" in _line(text, f"{learner}: evaluation return"), text


def check_04(text: str) -> None:
    # the buggy layer: the golden case's report names the first divergence, the fuzzer shrinks a counterexample
    assert ("MISMATCH: 12 of 13 tensors differ from case layer-basic-f64; first divergence: trace_W_z at step t=1"
            in text), text
    assert _line(text, "first divergence: trace_W_z at step t=1"), text
    assert "FAIL: a failing case was found and shrunk" in text, text
    shrunk = re.search(r"fuzz finds a counterexample: True; shrunk to T=(\d+) B=(\d+) I=(\d+) H=(\d+)", text)
    assert shrunk and int(shrunk.group(1)) <= 3 and int(shrunk.group(4)) <= 2, text
    # the fixed layer passes the golden case, the written minimal case (which the bug still fails) and a search
    assert "PASS: 13 of 13 tensors match case layer-basic-f64" in text, text
    assert _line(text, "the minimal case, replayed from its file: PASS"), text
    assert _line(text, "and the buggy layer on it: MISMATCH"), text
    assert re.search(r"^PASS: no failing case in \d+ drawn layer cases$", text, re.M), text
    if "JAX not installed" not in text:
        assert _line(text, "JAX, bug: MISMATCH"), text
        assert _line(text, "JAX, bug: FAIL: a failing case was found and shrunk"), text
        assert _line(text, "JAX, fixed: PASS: 19 of 19 tensors match case layer-basic-f64"), text
        assert _line(text, "JAX, fixed: PASS: no failing case in"), text


def check_05(text: str) -> None:
    _no_failure(text)
    # a fixed fact of the committed sweep; everything else is checked for its structure only, since the POPGym
    # table (and the staleness study) are regenerated as runs are added
    assert (_line(text, "memory-span sweep: rtrl learned")
            == "memory-span sweep: rtrl learned delays up to 128; tbptt none; feedforward none"), text
    for claim in ("memory-span sweep: summary == recomputed from the", "memory-span sweep: frames_to_learn ==",
                  "popgym: per-task summary == recomputed from the", "popgym: every run's eval_mean == its eval.json",
                  "atari breakout: results.md row rtrl-2m ==", "atari breakout: results.md row tbptt-2m ==",
                  "atari breakout: results.md row feedforward-2m ==", "atari qbert: results.md row ==",
                  "stacked: traces carried == trace_bytes", "stacked: largest H in 24 GiB == solved again",
                  "copy task: L12-H128.log's summary ==", "GPU sweep: bandwidth == bytes / back-to-back time"):
        assert _line(text, claim).endswith(": ok"), text
    for wrong in ("tampered sweep", "tampered popgym table", "tampered atari log", "tampered stacked fits",
                  "tampered copy-task csv", "tampered qbert log", "tampered GPU sweep"):
        assert " -> caught" in _line(text, wrong), text
    pop = re.fullmatch(r"popgym: rtrl >= tbptt on (\d+) of (\d+) tasks; rtrl > feedforward on (\d+) of (\d+) tasks",
                       _line(text, "popgym: rtrl >= tbptt on"))
    assert pop, text
    ge, m, gt, m2 = map(int, pop.groups())
    assert m == m2 >= 1 and ge <= m and gt <= m, text
    assert len(re.findall(r"^popgym \w+: rtrl ", text, re.M)) == m, text      # one line per task
    assert re.search(r"^minigrid: (pilot only \(|committed beyond the pilot: )", text, re.M), text
    atari = re.search(r"^atari breakout: (\d+) of (\d+) runs pass the target of 10: ", text, re.M)
    assert atari and int(atari.group(1)) <= int(atari.group(2)) == 3, text
    cells = [line for line in text.splitlines() if re.match(r"^[\w-]+: summary == recomputed from its \d+ runs", line)]
    assert len(cells) >= 3 and all(line.endswith(": ok") for line in cells), text    # one per cell sweep
    assert " -> caught" in _line(text, "tampered mingru-chrono sweep"), text
    assert re.match(r"GPU: .*correctness (\d+)/\1 checks pass", _line(text, "GPU: ")), text
    assert re.fullmatch(r"copy task: longest pattern at 100% sequence accuracy on this machine: L = \d+ .*",
                        _line(text, "copy task: longest pattern")), text
    assert "standard errors above random" in _line(text, "procgen starpilot: evaluation"), text
    if "staleness study: not committed yet" not in text:
        checks = [line for line in text.splitlines() if line.startswith("staleness study (") and "equals BPTT" in line]
        tampered = [line for line in text.splitlines() if line.startswith("tampered staleness point")]
        assert re.search(r"^staleness study", text, re.M) and all(line.endswith(": ok") for line in checks), text
        assert len(tampered) == len(checks) and all(line.endswith("-> caught") for line in tampered), text


CHECKS = {"01_rtrl_for_the_elstm": check_01, "02_promise_and_limits": check_02,
          "03_r2ac_from_scratch": check_03, "04_check_your_implementation": check_04,
          "05_results": check_05}


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [f"{stem}.ipynb" for stem in CHECKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
    assert path.stem in CHECKS, f"{path.name}: add the checks of what it prints to CHECKS"
    CHECKS[path.stem](_run(path, monkeypatch))
