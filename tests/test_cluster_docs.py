"""docs/cluster.md shows the commands the tests run, and its untestable files say so and parse."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from conftest import REPO_ROOT
from ray_processes import RAY_NODE_ENV, node_command

GUIDE = (REPO_ROOT / "docs" / "cluster.md").read_text()
CLUSTER = REPO_ROOT / "examples" / "cluster"


def test_the_guide_starts_the_nodes_as_the_tests_do():
    head = node_command(Path("/tmp/ss-ray/head"), cpus=1, head_port=6380)
    node2 = node_command(Path("/tmp/ss-ray/node2"), cpus=1, address="127.0.0.1:6380",
                         resources={"node2": 1})
    for command in (head, node2):
        for flag in command[1:]:
            flag = flag.replace('{"node2": 1}', """'{"node2": 1}'""")   # as typed in a shell
            assert flag in GUIDE, flag
    for name, value in RAY_NODE_ENV.items():
        assert f"{name}={value}" in GUIDE
    assert GUIDE.count("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 ray start") == 2


def test_the_guide_starts_postgres_as_the_tests_do():
    source = (REPO_ROOT / "tests" / "postgres_server.py").read_text()
    for part in ('"-A", "trust"', '"--no-sync"', "-h 127.0.0.1", "max_connections=200",
                 '"runuser", "-u", USER, "--"'):
        assert part in source, part
    for part in ("-A trust", "--no-sync", "-h 127.0.0.1", "max_connections=200",
                 "runuser -u postgres --", "pg_config --bindir", "postgresql+psycopg://"):
        assert part in GUIDE, part


def test_untested_cluster_files_say_so_and_parse():
    sbatch, rayjob = CLUSTER / "slurm.sbatch", CLUSTER / "rayjob.yaml"
    for path in (sbatch, rayjob):
        assert "NOT TESTED HERE" in "\n".join(path.read_text().splitlines()[:2]), path
        assert path.name in GUIDE
    assert subprocess.run(["bash", "-n", str(sbatch)]).returncode == 0
    documents = list(yaml.safe_load_all(rayjob.read_text()))
    job = documents[0]
    assert job["kind"] == "RayJob" and job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["entrypoint"].startswith("sparsity-search run ")
    assert "--address auto" in job["spec"]["entrypoint"]
