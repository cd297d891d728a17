"""The mutation runner (python -m verify mutate): how mutants are made, and that they are caught.

The end-to-end tests run the runner on a toy repository of two modules (one a cached Numba
kernel): a mutant its test covers is killed, one it does not cover survives, and a mutant
kernel is re-jitted although the unmutated kernel sits in the Numba cache.
"""

import textwrap

import pytest

from verify.mutate import EQUIVALENT, TARGETS, all_mutants, mutants_of, report, run_mutants, score

SNIPPET = textwrap.dedent('''
    """Module docstring: 1 + 2 is never mutated."""


    def step(x_t, b: int = 3, G=None):
        """Docstring."""
        if b < 0:
            raise ValueError(f"b: expected >= 0, got {b - 1}")
        G += x_t[b + 2] * 2.0
        return -G
''')


def test_mutants_of_a_snippet():
    found = {(m.operator, m.after.strip()) for m in mutants_of("snippet.py", SNIPPET)}
    assert ("drop left operand", "G += x_t[2] * 2.0") in found          # the four-rows kernel's survivor kind
    assert ("constant + 1", "G += x_t[b + 3] * 2.0") in found
    assert ("accumulate -> assign", "G = x_t[b + 2] * 2.0") in found
    assert ("flip comparison", "if (b <= 0):") in found
    assert ("drop unary operator", "return G") in found
    assert ("constant changed", "G += x_t[b + 2] * 4.0") in found
    touched = " ".join(after for _, after in found)
    assert "raise" not in touched and "1 + 2" not in touched                # skipped nodes
    assert all("b: int" in after for _, after in found if "def step" in after)   # annotations kept


def test_mutants_are_stable_and_targets_exist(tmp_path):
    from verify.mutate import ROOT

    for path, tests in TARGETS.items():
        assert (ROOT / path).is_file(), path
        assert all((ROOT / t).is_file() for t in tests), tests
    ms = all_mutants(ROOT, ["rtrl_ref/r2ac/vtrace.py"])
    assert ms and len({m.key for m in ms}) == len(ms)
    assert {m.key for m in ms} == {m.key for m in all_mutants(ROOT, ["rtrl_ref/r2ac/vtrace.py"])}
    assert all(isinstance(reason, str) and reason for reason in EQUIVALENT.values())


TOY = {
    "toy.py": "def add(a, b):\n    return a + b\n\n\ndef unused(a):\n    return a * 3\n",
    "kern.py": "import numba\n\n\n@numba.njit(cache=True)\ndef inc(a):\n    return a + 1\n",
    "test_toy.py": "from kern import inc\nfrom toy import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
                   "def test_inc():\n    assert inc(1) == 2\n",
}


def test_runner_kills_covered_mutants_and_rejits_kernels(tmp_path):
    pytest.importorskip("numba")
    for name, text in TOY.items():
        (tmp_path / name).write_text(text)
    targets = {"toy.py": ("test_toy.py",), "kern.py": ("test_toy.py",)}
    ms = [m for m in all_mutants(tmp_path, targets)
          if m.after.strip() in ("return (a - b)", "return a * 4", "return (a - 1)")]
    assert len(ms) == 3
    outcomes, baseline = run_mutants(ms, tmp_path, targets, timeout=120, equivalent={})
    status = {o.mutant.after.strip(): o.status for o in outcomes}
    assert status == {"return (a - b)": "killed", "return a * 4": "survived", "return (a - 1)": "killed"}, outcomes
    assert set(baseline) == {"toy.py", "kern.py"}
    assert score(outcomes)[:2] == (2, 3)
    text = report(outcomes, "# toy")
    assert "## Survivors (1)" in text and "`return a * 3` -> `return a * 4`" in text
    assert (tmp_path / "toy.py").read_text() == TOY["toy.py"]                 # the tree itself is untouched


def test_resume_reuses_killed_outcomes_and_carries_survivors(tmp_path, monkeypatch):
    """--resume: killed, crashed and timed-out mutants of earlier reports are reused (a later file
    wins for the same key); survivors, and mutants now justified as equivalent, are carried apart
    (they run again first); an unreadable report is a one-line error."""
    import json

    from verify import mutate

    ms = mutants_of("snippet.py", SNIPPET)
    statuses = ["killed", "crashed", "timeout", "survived", "killed"]
    rows = [dict(key=m.key, status=s, seconds=1.5, detail=f"d{k}") for k, (m, s) in enumerate(zip(ms, statuses))]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(rows))
    monkeypatch.setitem(mutate.EQUIVALENT, ms[4].key, "justified since")
    reused, carried = mutate._earlier_outcomes(ms, [path])
    assert [(o.mutant.key, o.status, o.detail) for o in reused] == [(ms[k].key, statuses[k], f"d{k}") for k in range(3)]
    assert [(o.mutant.key, o.status, o.detail) for o in carried] == [(ms[4].key, "equivalent", "justified since"),
                                                                     (ms[3].key, "survived", "d3")]
    later = tmp_path / "later.json"                                   # a later part killed the survivor
    later.write_text(json.dumps([dict(key=ms[3].key, status="killed", seconds=2.0, detail="new test")]))
    reused, carried = mutate._earlier_outcomes(ms, [path, later])
    assert [o.mutant.key for o in reused] == [m.key for m in ms[:4]] and [o.status for o in carried] == ["equivalent"]
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(SystemExit, match=r"--resume: expected a report \.json"):
        mutate._earlier_outcomes(ms, [bad])


def test_shards_split_the_order_and_merge_back(tmp_path, capsys):
    """--shard K/N takes every N-th mutant of the seeded order from the K-th: the shards are disjoint
    and cover every mutant; --resume of the shards' reports with --minutes 0 merges them without
    running anything; a malformed shard is a one-line error."""
    import json

    from verify import mutate

    files = ["rtrl_ref/r2ac/optim.py"]
    listed = {}
    for k in (1, 2, 3):
        mutate.main(["--full", "--files", *files, "--shard", f"{k}/3", "--list"])
        listed[k] = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    mutate.main(["--full", "--files", *files, "--list"])
    order = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert [listed[1], listed[2], listed[3]] == [order[0::3], order[1::3], order[2::3]]
    parts = []
    for k, status in ((1, "killed"), (2, "survived")):
        part = tmp_path / f"part{k}.json"
        part.write_text(json.dumps([dict(key=key, status=status, seconds=1.0, detail="") for key in listed[k]]))
        parts.append(str(part))
    report = tmp_path / "merged.md"
    mutate.main(["--full", "--files", *files, "--minutes", "0", "--report", str(report), "--resume", *parts])
    rows = {r["key"]: r["status"] for r in json.loads(report.with_suffix(".json").read_text())}
    expected = {key: "killed" for key in listed[1]} | {key: "survived" for key in listed[2]}
    assert {k: v for k, v in rows.items() if k not in mutate.EQUIVALENT} == \
        {k: v for k, v in expected.items() if k not in mutate.EQUIVALENT}
    for bad in ("0/2", "3/2", "a/b", "2"):
        with pytest.raises(SystemExit, match="--shard: expected K/N"):
            mutate._shard(bad)


def test_mutants_run_under_the_ci_profile_without_shrinking():
    """The runner's Hypothesis profile is registered (tests/conftest.py) and is CI's in every
    setting that decides which examples run; only the phases after a failure (shrinking and
    explaining it) are left out."""
    from hypothesis import Phase, settings

    from verify.mutate import HYPOTHESIS_PROFILE

    mutate, ci = settings.get_profile(HYPOTHESIS_PROFILE), settings.get_profile("ci")
    assert set(ci.phases) - set(mutate.phases) == {Phase.shrink, Phase.explain}
    assert set(mutate.phases) < set(ci.phases)
    for name in ("derandomize", "max_examples", "deadline", "suppress_health_check"):
        assert getattr(mutate, name) == getattr(ci, name), name
