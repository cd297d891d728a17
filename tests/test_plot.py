"""plot: labels by what differs between runs, distinct colours, seed bands, smoothing, baseline."""

import numpy as np
import pytest

from rtrl_ref.r2ac.config import make_config
from rtrl_ref.r2ac.loop import train
from rtrl_ref.r2ac.plot import main as plot_main
from rtrl_ref.r2ac.plot import parse_smooth, plot_runs, smooth

pytest.importorskip("matplotlib")

TINY = ["--num-envs", "4", "--unroll", "3", "--hidden", "4", "--features", "4", "--total-frames", "96",
        "--log-every", "1", "--no-progress", "--backend", "numpy"]


def run(tmp_path, name, *extra):
    return train(make_config(TINY + ["--run-dir", str(tmp_path), "--run-name", name, *extra])).run_dir


@pytest.fixture
def figure(monkeypatch):
    """The figure plot_runs draws, captured at savefig."""
    import matplotlib.figure

    captured = {}
    real = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kw):
        captured["legend"] = [t.get_text() for t in self.axes[0].get_legend().get_texts()]
        captured["colours"] = {line.get_label(): line.get_color() for line in self.axes[0].get_lines()
                               if not line.get_label().startswith("_")}
        captured["title"] = self.axes[0].get_title()
        captured["bands"] = len(self.axes[0].collections)
        return real(self, *args, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return captured


def test_runs_are_labelled_by_what_differs(tmp_path, figure):
    a = run(tmp_path, "a", "--env", "memory:cue?delay=2", "--lr", "0.001")
    b = run(tmp_path, "b", "--env", "memory:cue?delay=2", "--lr", "0.002")
    plot_runs([a, b], tmp_path / "lr.png")
    assert figure["legend"] == ["lr=0.001", "lr=0.002"]
    assert len(set(figure["colours"].values())) == 2
    assert figure["title"] == "memory:cue?delay=2"                         # not cut at a hyphen
    c = run(tmp_path, "c", "--env", "gym:CartPole-v1", "--lr", "0.001")
    plot_runs([a, c], tmp_path / "env.png")
    # the cpu-memory preset of the memory family also set stem, forget_bias, ...: they differ too
    first, second = figure["legend"]
    assert first.startswith("memory:cue?delay=2, stem=identity, ") and second.startswith("gym:CartPole-v1, stem=auto, ")
    assert "lr=" not in first + second and "seed" not in first + second     # equal in both runs
    assert figure["title"] == "gym:CartPole-v1, memory:cue?delay=2"


def test_seeds_of_one_setting_form_a_band(tmp_path, figure):
    runs = [run(tmp_path, f"s{seed}", "--env", "memory:cue?delay=2", "--seed", str(seed)) for seed in range(3)]
    other = run(tmp_path, "t", "--env", "memory:cue?delay=2", "--learner", "tbptt")
    plot_runs(runs + [other], tmp_path / "band.png", baseline=0.5, min_episodes=0)
    assert figure["legend"] == ["rtrl (3 runs, mean, min-max)", "tbptt (seed 0)", "random policy"]
    assert figure["bands"] == 1
    plot_runs(runs, tmp_path / "se.png", band="se", min_episodes=0)
    assert figure["legend"] == ["rtrl (3 runs, mean +- s.e.)"]
    plot_runs(runs, tmp_path / "lines.png", band="none", labels=["x", "x", "y"], min_episodes=0)
    assert figure["legend"] == ["x", "y"] and figure["bands"] == 0


def test_label_option_and_its_count(tmp_path, capsys):
    a = run(tmp_path, "a", "--env", "memory:cue?delay=2")
    out = tmp_path / "sub" / "dir" / "c.png"                               # parent folders are created
    assert plot_main([str(a), "--label", "mine", "--out", str(out), "--smooth", "ema:0.5"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert plot_main([str(a), "--label", "x", "--label", "y", "--out", str(out)]) == 2
    assert "--label: expected one label per run (1), got 2" in capsys.readouterr().err
    assert plot_main([str(a), "--smooth", "ema:2", "--out", str(out)]) == 2
    assert "--smooth ema:2" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert plot_main([str(a), "--out", str(blocker / "c.png")]) == 2
    assert "--out" in capsys.readouterr().err


def test_few_episode_points_are_drawn_dotted(tmp_path, figure):
    a = run(tmp_path, "a", "--env", "memory:cue?delay=2")
    plot_runs([a], tmp_path / "c.png", min_episodes=10 ** 6)
    assert figure["legend"] == ["rtrl"]                                    # only a dotted line, still labelled


def test_smoothing():
    y = np.array([np.nan, 1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(smooth(y, "2"), [np.nan, 1, 2, 4, 6])
    np.testing.assert_allclose(smooth(y, "ema:0.5"), [np.nan, 1, 2, 3.5, 5.25])
    assert smooth(y, "") is y
    for bad in ("0", "x", "ema:1", "ema:-0.1"):
        with pytest.raises(ValueError, match="--smooth"):
            parse_smooth(bad)
