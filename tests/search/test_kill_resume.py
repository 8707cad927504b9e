"""Kill a real search process (SIGKILL) at several points, resume it, and check the storage.

What must hold, read from the study's storage itself: every trial that had finished is still there
once and unchanged; trials that were running are FAIL with fail_reason "interrupted" and their
parameters were retried once (user attr ``retry_of``); the final number of finished trials equals
the budget; nothing is left RUNNING or WAITING.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from search.run.budget import is_surplus
from search.run.reliability import OWNER_KEY
from search.run.storage import open_storage

REPO = Path(__file__).resolve().parents[2]
BUDGET = 6
pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, storage: str | None, dense_epochs: int = 200,
                 finetune_epochs: int = 30) -> Path:
    config = {
        "study": "killed", "output_dir": str(tmp_path / "runs"), "device": "cpu", "threads": 1,
        "data": {"name": "synthetic", "options": {"samples": 300, "classes": 4}},
        "model": {"name": "mlp", "options": {"hidden": [16, 8]}},
        "dense": {"epochs": dense_epochs}, "finetune": {"epochs": finetune_epochs},
        # At most 90 % per layer: every candidate is valid, so every FAIL is an interruption.
        "space": {"bits": [8, 32], "criteria": ["magnitude"], "sparsity": {"high": 0.9}},
        "search": {"n_trials": BUDGET, "sampler": "random", "baseline_sparsities": [0.5],
                   "baseline_bits": [32], "early_stopping": {"enabled": False},
                   **({"storage": storage} if storage else {})},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def launch(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    # As from a terminal: Ctrl-C (SIGINT) handled by default even when this test process was
    # started in the background by a shell, which makes children inherit SIGINT as ignored.
    return subprocess.Popen([sys.executable, "-m", "search", "run", str(config)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            return line
        assert time.monotonic() < deadline, f"no line matching {pattern!r} in:\n{''.join(seen)}"
    raise AssertionError(f"process ended without a line matching {pattern!r}:\n{''.join(seen)}")


def load(url: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name="killed", storage=open_storage(url, heartbeat=False))
    except KeyError:
        return None


def probe(url: str) -> optuna.Study | None:
    """``load`` that gives up after 1 s on a SQLite lock held by the frozen process (the study's
    own storage waits 60 s, the whole deadline of ``stop_inside_a_trial``)."""
    if not url.startswith("sqlite:///"):
        return load(url)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 1}},
                                         skip_compatibility_check=True)
    try:
        return optuna.load_study(study_name="killed", storage=storage)
    except KeyError:
        return None
    finally:
        storage.engine.dispose()


def kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()


def snapshot(url: str) -> tuple[dict[int, tuple], set[int]]:
    """Finished trials (number -> params and values) and the numbers of running ones."""
    study = load(url)
    if study is None:
        return {}, set()
    trials = study.get_trials(deepcopy=False)
    done = {t.number: (t.params, t.values) for t in trials if t.state.is_finished()
            and t.state != optuna.trial.TrialState.FAIL}
    return done, {t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING}


def stop_inside_a_trial(proc: subprocess.Popen, url: str) -> int:
    """Freeze the process (SIGSTOP) at a moment its storage shows a trial running with its
    parameters drawn; return that trial's number. Frozen, it can't finish the trial before the
    signal the caller sends next."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        try:
            study = probe(url)
            running = [t.number for t in study.get_trials(deepcopy=False)
                       if t.state.name == "RUNNING" and t.params] if study else []
        except Exception:       # e.g. frozen while holding the SQLite write lock
            running = []
        if running:
            return running[0]
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("never saw a trial running")


def stop_a_worker_inside_a_trial(url: str, parent: int) -> tuple[int, int]:
    """Freeze (SIGSTOP) a worker process other than ``parent`` while the storage shows it running
    a trial with its parameters drawn; return ``(trial number, worker pid)``."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        study = load(url)
        running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"
                   and t.params and t.system_attrs.get(OWNER_KEY, {}).get("pid") not in
                   (None, parent)] if study else []
        if running:
            number, pid = running[0].number, running[0].system_attrs[OWNER_KEY]["pid"]
            os.kill(pid, signal.SIGSTOP)
            if load(url).trials[number].state.name == "RUNNING":
                return number, pid
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("never saw a worker running a trial")


def kill_during_trial(config: Path, url: str, after_finished: int) -> None:
    """Wait until ``after_finished`` trials finished and a new one has its parameters; kill."""
    proc = launch(config)
    wait_for_line(proc, rf"\[{after_finished}/{BUDGET}\] trial")
    stop_inside_a_trial(proc, url)
    kill(proc)


def check_storage(url: str, snapshots: list[dict[int, tuple]], interrupted: set[int],
                  budget: int = BUDGET) -> None:
    """Read from the storage itself (budget-surplus trials of parallel workers, never run, are
    left out)."""
    study = load(url)
    trials = [t for t in study.get_trials(deepcopy=False) if not is_surplus(t)]
    by_number = {t.number: t for t in trials}
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == budget, states
    assert "RUNNING" not in states and "WAITING" not in states, states
    for done in snapshots:                       # finished trials survive, unchanged, once
        for number, (params, values) in done.items():
            assert by_number[number].state.name == "COMPLETE"
            assert by_number[number].params == params and by_number[number].values == values
    failed = {t.number for t in trials if t.state.name == "FAIL"}
    assert failed == interrupted, {n: by_number[n].user_attrs.get("fail_reason") for n in failed}
    for number in interrupted:                   # reason stored, retried exactly once
        original = by_number[number]
        assert original.user_attrs["fail_reason"] == "interrupted"
        retries = [t for t in trials if t.user_attrs.get("retry_of") == number]
        assert len(retries) == 1, f"trial {number} retried {len(retries)} times"
        assert retries[0].state.name == "COMPLETE"
        assert {k: retries[0].params[k] for k in original.params} == original.params


def test_kill_three_times_then_resume_sqlite(tmp_path):
    config = write_config(tmp_path, None)
    url = f"sqlite:///{tmp_path / 'runs' / 'killed' / 'study.db'}"
    dense = tmp_path / "runs" / "killed" / "dense.pt"
    snapshots, interrupted = [], set()

    # 1. During dense training: no trial exists yet, no dense.pt a later run would trust.
    proc = launch(config)
    wait_for_line(proc, "training the dense reference")
    time.sleep(0.2)
    kill(proc)
    assert not dense.exists(), "the kill came after dense training; make it longer"
    assert not [p for p in dense.parent.iterdir() if p.suffix == ".pt"]
    assert snapshot(url) == ({}, set())

    # 2. During a trial (its parameters drawn, training under way).
    kill_during_trial(config, url, after_finished=2)
    done, running = snapshot(url)
    assert len(done) >= 2 and len(running) == 1
    snapshots.append(done)
    interrupted |= running

    # 3. Between trials: the moment a trial is reported finished (after the resumed run swept
    # the interrupted trial and retried it).
    proc = launch(config)
    wait_for_line(proc, r"was interrupted .* retried as trial")
    wait_for_line(proc, rf"\[{len(done) + 1}/{BUDGET}\] trial")
    kill(proc)
    done, running = snapshot(url)
    snapshots.append(done)
    interrupted |= running

    # Then let it finish.
    proc = launch(config)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    check_storage(url, snapshots, interrupted)
    assert interrupted, "no kill landed inside a trial"


def test_kill_during_trial_then_resume_journal(tmp_path):
    journal = tmp_path / "runs" / "study.log"
    config = write_config(tmp_path, f"journal:///{journal}", dense_epochs=20)
    url = f"journal:///{journal}"
    kill_during_trial(config, url, after_finished=1)
    done, running = snapshot(url)
    assert len(running) == 1
    proc = launch(config)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert "was interrupted" in output
    check_storage(url, [done], running)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_marks_the_running_trial_interrupted_and_queues_it(sig, tmp_path):
    config = write_config(tmp_path, None, dense_epochs=20)
    url = f"sqlite:///{tmp_path / 'runs' / 'killed' / 'study.db'}"
    proc = launch(config)
    wait_for_line(proc, rf"\[1/{BUDGET}\] trial")
    number = stop_inside_a_trial(proc, url)
    proc.send_signal(getattr(signal, sig))     # delivered when it runs again, inside the trial
    proc.send_signal(signal.SIGCONT)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert output.strip().splitlines()[-1] == "interrupted; run the same command again to resume"
    trials = load(url).get_trials(deepcopy=False)
    stopped = trials[number]
    assert stopped.state.name == "FAIL" and stopped.user_attrs["fail_reason"] == "interrupted"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == stopped.number]
    assert len(retry) == 1 and retry[0].state.name == "WAITING"
    assert retry[0].params == stopped.params
    assert (tmp_path / "runs" / "killed" / "trials.csv").is_file()


def test_ctrl_c_of_a_run_with_workers_as_timeout_sends_it_is_clean_and_resumes(tmp_path):
    """The terminal's Ctrl-C reaches the whole process group; ``timeout -s INT`` sends it to the
    command and then to the group again. The workers' trials used to end in Optuna's warning and
    two tracebacks (the second signal, or terminate(), cut the first one's cleanup)."""
    # Trials long enough that worker 0 cannot finish the budget before worker 1 joins (in a fresh
    # environment the fork server's first imports compile bytecode and take seconds).
    config = write_config(tmp_path, None, dense_epochs=20, finetune_epochs=150)
    url = f"sqlite:///{tmp_path / 'runs' / 'killed' / 'study.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "search", "run", str(config), "--workers", "2"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_line(proc, r"^\[w1\] study 'killed'")
    wait_for_line(proc, r"^\[w\d\] \[\d+/")       # trials run in both processes now
    os.kill(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGINT)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert "Traceback" not in output and "failed with" not in output, output
    assert output.strip().splitlines()[-1] == "interrupted; run the same command again to resume"
    trials = load(url).get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    for stopped in (t for t in trials if t.user_attrs.get("fail_reason") == "interrupted"):
        assert len([t for t in trials if t.user_attrs.get("retry_of") == stopped.number]) == 1
    resumed = subprocess.run([sys.executable, "-m", "search", "run", str(config)], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert sum(t.state.name in ("COMPLETE", "PRUNED")
               for t in load(url).get_trials(deepcopy=False)) == BUDGET
