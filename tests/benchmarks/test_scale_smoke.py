"""Smoke test: the scale benchmark measures the built-in CNN in a subprocess, including a short
study run by the real trial loop."""
import pandas as pd

from conftest import load_benchmark


def test_scale_tiny(tmp_path):
    out = tmp_path / "scale.csv"
    assert load_benchmark("scale.py").main(["--tiny", "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["model"] == "cnn" and row["layers"] == 5
    assert row["study_trials"] == 12 and row["peak_rss_MB"] > 0
    assert row["overhead_ms_at_10"] > 0 and row["overhead_ms_at_end"] > 0
    assert 0 < row["sampler_ms_at_end"] < row["overhead_ms_at_end"] + 1e-6
    assert row["trial_s_1_epoch_256"] > row["eval_ms_per_trial"] / 1000   # a trained trial
