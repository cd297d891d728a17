"""python -m rtrl_ref.confirm cells-span: the cells' memory-span sweeps side by side (no training)."""

import json

import pytest

from rtrl_ref.r2ac import cells_span


def fake_sweep(folder, evals: dict, delays=(8, 16), learners=("rtrl", "tbptt"), seeds=2):
    """A sweep's results.json whose eval_mean is evals[(learner, delay)] for every seed."""
    runs = [dict(delay=d, learner=lr, seed=s, eval_mean=evals[(lr, d)], eval_std=0.1, train_return=0.5,
                 frames=100, fps=1.0, frames_to_learn=None) for d in delays for s in range(seeds) for lr in learners]
    summary = dict(median_frames_to_learn={lr: {str(d): (1234.0 if evals[(lr, d)] >= 0.9 else None) for d in delays}
                                           for lr in learners})
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(dict(command="python -m rtrl_ref.confirm memory-span-sweep x",
                                                         episodes_per_run=100, eval_episodes=10, summary=summary,
                                                         runs=runs)))
    return folder


def test_table_and_plot_from_two_sweeps(tmp_path):
    a = fake_sweep(tmp_path / "a", {("rtrl", 8): 0.95, ("rtrl", 16): 0.5, ("tbptt", 8): 0.5, ("tbptt", 16): 0.5})
    b = fake_sweep(tmp_path / "b", {("rtrl", 8): 0.99, ("rtrl", 16): 0.91, ("rtrl", 32): 0.99, ("tbptt", 8): 0.5,
                                    ("tbptt", 16): 0.5, ("tbptt", 32): 0.5},
                   delays=(8, 16, 32))
    assert cells_span.main(["--sweeps", f"elstm={a}", f"lru={b}", "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "results.md").read_text()
    assert "| lru | rtrl | 2 | 0.990 | 0.910 | 0.990 | 32 |" in text    # D=32: only lru ran it
    assert "| elstm | rtrl | 2 | 0.950 | 0.500 | - | 8 |" in text
    assert "| lru | tbptt | 2 | 0.500 | 0.500 | 0.500 | none |" in text
    assert "| lru | 1,234 | 1,234 | 1,234 |" in text and "| elstm | 1,234 | - | - |" in text
    assert (tmp_path / "out" / "span.png").stat().st_size > 1000


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit, match="2"):
        cells_span.main(["--sweeps", "elstm", "--out", str(tmp_path)])
    assert "--sweeps: expected CELL=FOLDER, got 'elstm'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="cells-span: expected a sweep's results.json in"):
        cells_span.main(["--sweeps", f"elstm={tmp_path / 'missing'}", "--out", str(tmp_path)])
