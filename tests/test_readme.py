"""The README's code example runs and its claim (step, segment and BPTT agree) holds."""

from pathlib import Path

import numpy as np

from verify.compare import assert_fields_close, tolerance

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_and_agrees():
    text = README.read_text()
    start = text.index("```python") + len("```python")
    code = text[start:text.index("```", start)]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    tol = tolerance("exact", np.float64)
    assert_fields_close("README step vs bptt", scope["step"].grads, scope["exact"], tol)
    assert_fields_close("README segment vs bptt", scope["seg"].grads, scope["exact"], tol)


def test_readme_gives_exactly_two_setup_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    setup = [line.strip() for line in text.splitlines() if line.strip().startswith("bash scripts/setup.sh")]
    assert len(setup) == 2, setup
    ci = (README.parent / ".ci" / "run").read_text()
    assert setup[1] in ci, f"CI does not run the README's test command {setup[1]!r}"


FAMILY_EXAMPLES = {"memory": "memory:cue?delay=8", "atari": "atari:Breakout", "procgen": "procgen:chaser",
                   "dmlab": "dmlab:rooms_watermaze", "gym": "gym:CartPole-v1", "popgym": "popgym:RepeatPreviousEasy",
                   "minigrid": "minigrid:MemoryS7"}


def family_table() -> list[dict]:
    text = README.read_text()
    start = text.index("### Defaults per environment family")
    section = text[start:text.index("\n### ", start + 1)]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:] if ln.strip()]


def test_readme_family_defaults_table_matches_the_code():
    from rtrl_ref.r2ac.config import make_config

    rows = family_table()
    families = [f.strip() for row in rows for f in row["family"].split(",")]
    import envs

    assert sorted(families) == sorted(FAMILY_EXAMPLES) == sorted(envs.FAMILIES), families
    for row in rows:
        for family in (f.strip() for f in row["family"].split(",")):
            c = make_config(["--env", FAMILY_EXAMPLES[family]])
            where = f"README defaults table, family {family}"
            assert (c.preset or "none") == row["preset"], where
            for field in ("num_envs", "unroll", "hidden", "total_frames"):
                assert int(row[field]) == getattr(c, field), f"{where}: {field}"
            for field in ("lr", "rms_eps"):
                assert float(row[field]) == getattr(c, field), f"{where}: {field}"
            for field in ("stem", "stem_init", "rms_bias_correction"):
                assert row[field] == str(getattr(c, field)), f"{where}: {field}"
            chrono = c.forget_init == "chrono"
            detail = f"chrono_t_max {c.chrono_t_max:g}" if chrono else f"forget_bias {c.forget_bias:g}"
            assert row["forget_init"] == f"{c.forget_init} ({detail})", f"{where}: forget_init"
