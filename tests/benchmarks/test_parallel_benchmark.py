"""Smoke test of benchmarks/parallel.py: the tiny study through the script, figures well formed."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, cli_env

SCRIPT = REPO_ROOT / "benchmarks" / "parallel.py"


def test_every_benchmark_path_is_a_valid_config(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import parallel as bench
    finally:
        sys.path.remove(str(SCRIPT.parent))
    base = bench.base_config(True, 3, tmp_path)
    configs = {name: bench.path_config(base, name) for name in bench.PATHS}
    assert configs["2-workers"].parallel.workers == 2
    assert configs["ray-2"].parallel.backend == "ray" and configs["ray-2"].ray.max_concurrent == 2
    assert len({c.study for c in configs.values()}) == len(configs)   # one study folder each
    assert all(c.search.n_trials == 3 for c in configs.values())


@pytest.mark.slow
def test_tiny_benchmark_reports_finite_figures(tmp_path):
    # One path keeps it cheap; Ray and several workers are exercised in tests/search/backends.
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--paths", "1-worker",
                           "--repeats", "2", "--json", str(out),
                           "--output-dir", str(tmp_path / "runs")],
                          cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    figures = report["paths"]["1-worker"]
    assert figures["trials"] == 4 and figures["speedup"] == 1.0
    # two rounds, each its own fresh study; the figures are their medians
    assert report["repeats"] == 2 and len(report["rounds"]) == 2
    assert figures["speedup_min"] == figures["speedup_max"] == 1.0
    walls = [r["1-worker"]["wall_s"] for r in report["rounds"]]
    assert figures["wall_s"] == pytest.approx(sum(walls) / 2)
    for key in ("wall_s", "trials_per_hour", "eval_s", "overhead_s", "steady_overhead_s"):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["eval_s"] * 4 <= figures["wall_s"]                 # evaluation fits in the wall
    assert figures["workers"] == 1 and 0 <= figures["workers_ready_s"] <= figures["wall_s"]
    assert "1-worker" in done.stdout and "trials/h" in done.stdout
    assert "median of 2 rounds" in done.stdout


@pytest.mark.slow
def test_tiny_benchmark_on_postgres_and_a_two_node_cluster(tmp_path, postgres_url, capsys):
    """The PostgreSQL storage and the two-node cluster paths (the script starts and stops the
    nodes; the session checks that no Ray process survives)."""
    from conftest import load_benchmark

    bench = load_benchmark("parallel.py")
    out = tmp_path / "bench.json"
    assert bench.main(["--tiny", "--paths", "2-workers,ray-2-nodes", "--postgres", postgres_url,
                       "--two-nodes", "--json", str(out),
                       "--output-dir", str(tmp_path / "runs")]) == 0
    report = json.loads(out.read_text())
    assert report["storage"] == "postgresql"
    for name in ("2-workers", "ray-2-nodes"):
        figures = report["paths"][name]
        assert figures["trials"] == 4, name
        for key in ("wall_s", "trials_per_hour", "eval_s", "overhead_s"):
            assert math.isfinite(figures[key]) and figures[key] > 0, (name, key)
    assert "ray-2-nodes" in capsys.readouterr().out
