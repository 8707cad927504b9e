"""Local parallel workers (real processes) on one journal file, and the `worker` subcommand."""
from __future__ import annotations

import json
import subprocess

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from conftest import REPO_ROOT, cli_command, cli_env, tiny_config_dict
from search.api import run_search
from search.run.budget import WORKER_ATTR, is_surplus
from search.config import config_from_dict
from search.schema import ConfigError
from search.run.storage import open_storage
from search.run.worker import run_worker

BUDGET = 16


def _ran(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that ran, but for surplus ones and invalid candidates (rejected before training:
    they cost nothing and count neither towards the budget nor as failures)."""
    return [t for t in study.get_trials(deepcopy=False)
            if not is_surplus(t) and not t.user_attrs.get("invalid")]


@pytest.mark.slow
def test_two_workers_on_one_journal_fill_the_budget_exactly_once(tmp_path):
    journal = tmp_path / "shared" / "study.log"
    data = tiny_config_dict(tmp_path, n_trials=BUDGET, storage=f"journal:///{journal}")
    data["parallel"] = {"workers": 2}
    # Trials of about a second, so that the spawned worker, starting a few seconds after this
    # process (worker 0) began its trials, still gets some.
    data["data"]["options"]["samples"] = 6000
    data["finetune"]["epochs"] = 3
    logs: list[str] = []
    result = run_search(config_from_dict(data), log=logs.append)

    study = optuna.load_study(study_name="tiny", storage=open_storage(f"journal:///{journal}"))
    trials = study.get_trials(deepcopy=False)
    ran = _ran(study)
    # finished = complete or stopped early (early stopping is on by default with 3 epochs)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    assert len([t for t in trials if t.state in finished]) == BUDGET
    assert all(t.state in finished for t in ran)                     # nothing running or failed
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))                         # no duplicate trial numbers
    trained = [t for t in ran if "duplicate_of" not in t.user_attrs]  # (a reused twin: not trained)
    params = [json.dumps(t.params, sort_keys=True) for t in trained]
    assert len(params) == len(set(params))                           # no candidate trained twice
    assert len({t.user_attrs[WORKER_ATTR] for t in ran}) == 2        # both workers did trials
    assert all(t.params == {} for t in trials if is_surplus(t))      # surplus: nothing sampled
    # The parent's view and the tables agree; surplus trials are not in them.
    table = pd.read_csv(tmp_path / "runs" / "tiny" / "trials.csv")
    if "invalid" in table:                       # rejected before training: listed, not counted
        table = table[~table["invalid"].astype("boolean").fillna(False)]
    assert len(table) == BUDGET and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    assert len(result.front()) >= 1
    invalid = [t for t in trials if t.user_attrs.get("invalid")]
    assert result.status().failed == len(invalid)        # surplus trials are no failure either


@pytest.mark.slow
def test_worker_subcommand_joins_a_study_and_stops_at_its_budget(tmp_path):
    journal = tmp_path / "study.log"
    url = f"journal:///{journal}"
    data = tiny_config_dict(tmp_path, n_trials=2, storage=url)
    run_search(config_from_dict(data), log=lambda _: None)
    # The study's budget is raised in a config file; a worker joins and runs only what is missing.
    data["search"]["n_trials"] = 4
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(data))
    done = subprocess.run(cli_command("worker", str(bigger), "--storage", url, "--threads", "1"),
                          cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "joined study 'tiny' with 1 torch thread(s)" in done.stdout
    study = optuna.load_study(study_name="tiny", storage=open_storage(url))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4

    with pytest.raises(ConfigError, match="has no study named 'nope'; start it with"):
        run_worker(config_from_dict({**data, "study": "nope"}))


def test_python_api_objects_that_cannot_reach_worker_processes_are_named(tmp_path):
    from torch import nn

    data = tiny_config_dict(tmp_path, n_trials=2)
    data["parallel"] = {"workers": 2}
    data["dense"] = {"epochs": 1}
    with pytest.raises(ConfigError, match="sends the Python API's model_factory to worker "
                                          "processes, but it cannot be pickled"):
        run_search(data, model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(),
                                                     nn.Linear(8, 4)),
                   log=lambda _: None)
    # before the dense reference trained: the refused new study leaves nothing behind
    assert not (tmp_path / "runs" / data["study"]).exists()


@pytest.mark.slow
def test_a_python_model_instance_reaches_worker_processes(tmp_path):
    """An nn.Module given to run_search is copied for each use by a picklable factory (the
    attention-splitting wrapper too): with workers > 1 it used to be refused as unpicklable."""
    from torch import nn

    data = tiny_config_dict(tmp_path, n_trials=4)
    data["parallel"] = {"workers": 2}
    data["dense"] = {"epochs": 1}
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 4))
    logs: list[str] = []
    result = run_search(data, model=model, log=logs.append)   # refused as unpicklable before
    trials = result.trials()
    assert len(trials) == 4 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert any("starting 1 worker process" in line for line in logs)


def test_a_worker_given_the_cost_basis_builds_the_same_context_without_counting_flops(tmp_path):
    """Spawned workers get the cost basis from the process that started them: the same context,
    and FlopCounterMode (whose first use imports torch._dynamo, ~1 s) never runs there."""
    from search.run.context import build_study_context, context_basis

    config = config_from_dict(tiny_config_dict(tmp_path))
    context, space = build_study_context(config, log=lambda _: None)
    basis = context_basis(context)
    again, again_space = build_study_context(config, log=lambda _: None, basis=basis)
    assert context_basis(again) == basis
    assert [layer.name for layer in again_space.layers] == [layer.name for layer in space.layers]
    script = (
        "import sys, pickle\n"
        "from search.config import config_from_dict\n"
        "from search.run.context import build_study_context\n"
        f"config, basis = pickle.loads({__import__('pickle').dumps((config, basis))!r})\n"
        "context, _ = build_study_context(config, log=lambda _: None, basis=basis)\n"
        "print('dynamo' if 'torch._dynamo' in sys.modules else 'no dynamo', len(context.layers))\n")
    out = subprocess.run([*cli_command()[:1], "-c", script], env=cli_env(), capture_output=True,
                         text=True, check=True, timeout=300).stdout.split()
    assert out == ["no", "dynamo", str(len(basis.layers))]


def test_a_worker_that_cannot_start_is_reported_and_the_started_ones_joined(tmp_path):
    """Workers start from a background thread (a fork server may still be importing): a start
    that fails there is raised by ``join`` in the caller, naming the cause."""
    import threading

    from search.run.backends.local import WORKER_START_METHOD, WorkerProcesses
    from search.run.progress import StudyStopped

    assert WORKER_START_METHOD in ("forkserver", "spawn")
    config = config_from_dict(tiny_config_dict(tmp_path, n_trials=2))
    unpicklable = threading.Lock()          # cannot be sent to a worker process
    workers = WorkerProcesses(config, [1], 2, basis=unpicklable)
    with pytest.raises(StudyStopped, match="a worker process could not start .*lock"):
        workers.join()
    assert workers.started() == []


def test_the_data_loaders_modules_are_named_for_the_fork_server():
    import importlib.util

    from trainers.data.catalog import DATASETS, modules_to_preload
    from trainers.data.settings import DataSettings

    for name in DATASETS:
        modules = modules_to_preload(DataSettings(name=name))
        assert modules and all(importlib.util.find_spec(m) is not None for m in modules), name
    assert modules_to_preload(DataSettings(name="mypkg.data:load")) == []


def test_a_script_that_runs_a_study_at_import_is_not_run_again_by_its_workers(tmp_path):
    """Worker processes import the caller's main module. A script without
    ``if __name__ == "__main__":`` would start its study again in each of them: the worker says
    why it stops instead, and the caller (worker 0) fills the budget alone."""
    script = tmp_path / "unguarded.py"
    data = tiny_config_dict(tmp_path, n_trials=6)
    data["parallel"] = {"workers": 2}
    script.write_text(f"from search.api import run_search\n"
                      f"result = run_search({data!r}, log=print)\n"
                      f"print('FINISHED', len(result.trials()))\n")
    done = subprocess.run([cli_command()[0], str(script)], capture_output=True, text=True,
                          env=cli_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FINISHED 6" in done.stdout
    assert 'put the code that runs the study under `if __name__ == "__main__":`' in done.stderr
    assert "[w1] [" not in done.stdout                       # no trial ran in the worker
    assert "worker processes failed: sparsity-search-worker-1 (exit code 1)" in done.stdout


def test_a_factory_defined_under_the_main_guard_is_named_by_the_worker(tmp_path):
    """It pickles in the caller, but a worker imports the main module without running the guard:
    it died in multiprocessing's unpickling with a bare AttributeError traceback."""
    script = tmp_path / "guarded.py"
    data = tiny_config_dict(tmp_path, n_trials=4)
    data["parallel"] = {"workers": 2}
    script.write_text(
        "from torch import nn\n"
        "from search.api import run_search\n"
        "if __name__ == '__main__':\n"
        "    def make():\n"
        "        return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 4))\n"
        f"    result = run_search({data!r}, model=make, log=print)\n"
        "    print('FINISHED', len(result.trials()))\n")
    done = subprocess.run([cli_command()[0], str(script)], capture_output=True, text=True,
                          env=cli_env(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FINISHED 4" in done.stdout and "Traceback" not in done.stderr
    assert ("[w1] stopped: cannot load the Python API's model, data or loss sent to it "
            "(AttributeError: Can't get attribute 'make'") in done.stdout
