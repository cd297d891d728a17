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
