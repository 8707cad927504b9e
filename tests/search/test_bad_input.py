"""Bad input: one line `error: ...` naming the field, the rule and the value; exit status 2; an
existing study (storage, dense reference, tables, config) left byte for byte as it was, and a new
study refused on bad input leaves nothing behind (no folder, no storage file)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from conftest import SQLITE_SIDE_FILES, folder_contents, tiny_config_dict
from search.api import run_search
from search.cli.main import EXIT_BAD_INPUT, main
from search.config import config_from_dict


@pytest.fixture(scope="module")
def existing(tmp_path_factory):
    """A finished two-trial study every case tries (and fails) to touch."""
    tmp = tmp_path_factory.mktemp("existing")
    data = tiny_config_dict(tmp, n_trials=2)
    data["study"] = "kept"
    run_search(config_from_dict(data), log=lambda _: None)
    return tmp, data


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return folder_contents(folder)


def all_paths(folder: Path) -> set[str]:
    """Every file and folder under ``folder`` (an empty folder left behind shows here)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if not p.name.endswith(SQLITE_SIDE_FILES)}


def run_cli(tmp: Path, text: str, capsys) -> str:
    path = tmp / "bad.yaml"
    path.write_text(text)
    code = main(["run", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BAD_INPUT, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0][len("error: "):]


def merge(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


CASES = {
    "unknown key": ({"space": {"sparsity": {"hihg": 0.9}}},
                    ["unknown key 'space.sparsity.hihg' (did you mean 'high'?)"]),
    "wrong type": ({"dense": {"epochs": "ten"}},
                   ["field 'dense.epochs' must be an integer, got str 'ten'"]),
    "sparsity below 0": ({"space": {"sparsity": {"low": -0.1}}},
                         ["space.sparsity.low must be in [0, 1), got -0.1"]),
    "sparsity of 1": ({"search": {"baseline_sparsities": [0.5, 1.0]}},
                      ["search.baseline_sparsities must be in [0, 1), got 1.0"]),
    "bits": ({"space": {"bits": [8, 12]}},
             ["space.bits must be values from [2, 3, 4, 5, 6, 7, 8, 16, 32], got 12"]),
    "criterion": ({"space": {"criteria": ["magnitud"]}},
                  ["space.criteria: criterion must be one of [", "'magnitude'", "got 'magnitud'"]),
    "model": ({"model": {"name": "resnet999"}},
              ["model.name must be one of [", "'cnn'", "got 'resnet999'"]),
    "dotted model path is not imported": ({"model": {"name": "os.system"}},
                                          ["model.name must be one of [", "got 'os.system'"]),
    "custom model not importable": ({"study": "custom",
                                     "model": {"name": "no_such_module_xyz:build"}},
                                    ["model factory 'no_such_module_xyz:build': no module named "
                                     "'no_such_module_xyz'"]),
    "torchvision data root": ({"study": "mnist",
                               "data": {"name": "torchvision:MNIST", "root": "/no/such/mnist",
                                        "options": {}}},
                              ["data.root '/no/such/mnist' has no MNIST data", "download: true"]),
    "data set": ({"data": {"name": "imagenet-typo"}},
                 ["data.name must be one of [", "'digits'", "got 'imagenet-typo'"]),
    "sampler": ({"search": {"sampler": "cmaes"}},
                ["search.sampler must be one of ['nsga2', 'tpe', 'random', 'gp', 'evo'], got 'cmaes'"]),
    "objective metric": ({"search": {"objectives": {"accuracy": "max", "speed": "max"}}},
                         ["search.objectives: metric must be one of [", "'flops'", "got 'speed'"]),
    "direction": ({"search": {"objectives": {"accuracy": "maximise"}}},
                  ["search.objectives.accuracy: direction must be 'max' or 'min', "
                   "got 'maximise'"]),
    "empty bits": ({"space": {"bits": []}}, ["space.bits must list at least one value, got []"]),
    "nothing to search": ({"study": "other", "space": {"sparsity": {"low": 0.0, "high": 0.0},
                                                       "bits": [32], "criteria": ["magnitude"]}},
                          ["space: search space is empty: no layer's sparsity can vary"]),
    "group matching nothing": ({"study": "g", "space": {"groups": {"convs": "nosuch.*"}}},
                               ["space.groups.convs: pattern 'nosuch.*' matches no"]),
    "device": ({"device": "gpu0"}, ["device must be one of auto, cpu, cuda, cuda:N, mps; "
                                    "got 'gpu0'"]),
    "storage url": ({"study": "new-db", "search": {"storage": "nosuchdb://host/x"}},
                    ["search.storage: cannot open storage 'nosuchdb://host/x' ("]),
    "other space": ({"space": {"bits": [4, 8]}},
                    ["study 'kept' exists with a different search space (space.settings.bits: "
                     "stored [2, 4, 8, 16, 32], now [4, 8])", "use a new study name",
                     "--study kept-2"]),
    "other objectives": ({"search": {"objectives": {"accuracy": "max", "size_bytes": "min"}}},
                         ["study 'kept' exists with different objectives (stored {accuracy: "
                          "max, flops: min, energy_uj: min}, this config {accuracy: max, "
                          "size_bytes: min})", "--study kept-2"]),
    "other fine-tuning": ({"finetune": {"epochs": 2}},
                          ["study 'kept' exists with a different setup (config.finetune.epochs: "
                           "stored 1, now 2)"]),
    "negative seed": ({"study": "n", "seed": -1}, ["seed must be an integer in [0, 2147483647], "
                                                   "got -1"]),
    "seed too large": ({"study": "n", "seed": 5000000000},
                       ["seed must be an integer in [0, 2147483647], got 5000000000"]),
    "negative weight decay": ({"study": "n", "dense": {"weight_decay": -1}},
                              ["dense: weight_decay must be a finite number >= 0, got -1.0"]),
    "infinite lr": ({"study": "n", "finetune": {"lr": float("inf")}},
                    ["finetune: lr must be a finite number > 0, got inf"]),
    "model option typo": ({"study": "n", "model": {"options": {"widht": 4}}},
                          ["do not fit model 'cnn': ", "unexpected keyword argument 'widht'"]),
    "model option it cannot build with": ({"study": "n", "model": {"options": {"width": -4}}},
                                          ["model.options {'width': -4} do not fit model 'cnn': ",
                                           "negative dimension -4"]),
    "validation split too small": ({"study": "n", "data": {"val_fraction": 0.001}},
                                   ["data.val_fraction 0.001 of 240 samples is too small a split"]),
    "infinite kept per output": ({"study": "n", "space": {"min_kept_per_output": float("inf")}},
                                 ["space.min_kept_per_output must be a finite number > 0"]),
    "repeated bit-width": ({"study": "n", "space": {"bits": [8, 8, 32]}},
                           ["space.bits must list each value once, got [8, 8, 32]"]),
    "rung never reached": ({"study": "n", "search": {"early_stopping": {"rungs": [10]}}},
                           ["search.early_stopping.rungs must be fine-tune epochs below the last "
                            "(1: finetune.epochs or the largest of space.finetune_epochs), got "
                            "[10]"]),
    "no rung": ({"study": "n", "search": {"early_stopping": {"rungs": []}}},
                ["search.early_stopping.rungs must list at least one fine-tune epoch "
                 "(search.early_stopping.enabled: false turns early stopping off), got []"]),
    "negative split seed": ({"study": "n", "data": {"split_seed": -5}},
                            ["data.split_seed must be an integer in [0, 2**32 - 1], got -5"]),
    "cost constraint <= 0": ({"study": "n", "search": {"constraints": {"max_flops": -1}}},
                             ["search.constraints.max_flops must be > 0, got -1"]),
    "accuracy constraint above 1": ({"study": "n",
                                     "search": {"constraints": {"min_accuracy": 1.7}}},
                                    ["search.constraints.min_accuracy must be in [0, 1] for "
                                     "metric 'accuracy', got 1.7"]),
    "floor on a cost": ({"study": "n", "search": {"constraints": {"min_flops": 5}}},
                        ["search.constraints: flops is minimized, so its bound is max_flops, "
                         "got 'min_flops'"]),
    "NaN constraint": ({"study": "n", "search": {"constraints": {"max_flops": float("nan")}}},
                       ["search.constraints.max_flops must be a finite number, got nan"]),
    "baseline bits not a width": ({"study": "n", "search": {"baseline_bits": [64]}},
                                  ["search.baseline_bits must be values from [2, 3, 4, 5, 6, 7, 8, "
                                   "16, 32], got 64"]),
    "baseline bits outside the space": ({"study": "n", "search": {"baseline_bits": [3]}},
                                        ["search.baseline_bits must be values from space.bits "
                                         "[2, 4, 8, 16, 32], got 3"]),
    "infinite watts": ({"study": "n", "cost": {"watts_per_core": float("inf")}},
                       ["cost.watts_per_core must be a finite number > 0, got inf"]),
    "data option typo": ({"study": "n", "data": {"options": {"samples": 240, "clases": 4}}},
                         ["data.options ['clases'] are not options of data set 'synthetic'"]),
    "one class": ({"study": "n", "data": {"options": {"samples": 240, "classes": 1}}},
                  ["data.options of 'synthetic' need classes >= 2", "got classes 1"]),
    "in-memory storage": ({"study": "n", "search": {"storage": "sqlite:///"}},
                          ["search.storage must name a database file", "got 'sqlite:///'"]),
    "constraints added on resume": ({"search": {"constraints": {"max_flops": 5e4}}},
                                    ["study 'kept' exists with a different setup", "constraints"]),
    "other pruning settings": ({"pruning": {"nm_block": 8}},
                               ["study 'kept' exists with a different setup "
                                "(config.pruning.nm_block: stored 4, now 8)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_one_line_exit_2_study_untouched(case, existing, capsys):
    tmp, base = existing
    change, expected = CASES[case]
    before, paths = folder_bytes(tmp / "runs"), all_paths(tmp / "runs")
    message = run_cli(tmp, yaml.safe_dump(merge(base, change)), capsys)
    for part in expected:
        assert part in message, message
    assert not message.startswith("space: space."), message      # one prefix, not two
    assert folder_bytes(tmp / "runs" / "kept") == before_kept(before)
    assert all_paths(tmp / "runs") == paths          # nothing left behind, not even a folder


def test_a_layer_with_no_weights_is_refused_before_training(existing, capsys):
    """``hidden: [0]`` built an MLP whose layers hold no weights: the dense reference trained,
    then the cost model divided by zero (a traceback) and left a study behind."""
    tmp, base = existing
    before, paths = folder_bytes(tmp / "runs"), all_paths(tmp / "runs")
    config = {**base, "study": "n", "model": {"name": "mlp", "options": {"hidden": [0]}}}
    message = run_cli(tmp, yaml.safe_dump(config), capsys)
    assert message == ("model 'mlp': layer(s) net.1 [0, 64], net.3 [4, 0] have no weights; "
                       "every Conv2d / Linear layer needs at least one (check model.options: a "
                       "width or hidden size of 0)")
    assert folder_bytes(tmp / "runs" / "kept") == before_kept(before)
    assert all_paths(tmp / "runs") == paths


@pytest.mark.parametrize("storage", ["default", "sqlite elsewhere", "journal elsewhere"])
def test_a_new_study_refused_late_leaves_no_folder_and_no_storage_file(storage, tmp_path,
                                                                       capsys):
    """Refused after the study folder and the storage file were created (the data root is checked
    when the data loads): both are removed, folders above them too, nothing else is touched."""
    data = tiny_config_dict(tmp_path / "deep" / "er")
    data["data"] = {"name": "torchvision:MNIST", "root": str(tmp_path / "no-mnist")}
    where = {"sqlite elsewhere": f"sqlite:///{tmp_path}/db/new/study.db",
             "journal elsewhere": f"journal:///{tmp_path}/db/new/study.log"}
    if storage in where:
        (tmp_path / "db").mkdir()
        (tmp_path / "db" / "other.txt").write_text("not ours")
        data["search"]["storage"] = where[storage]
    message = run_cli(tmp_path, yaml.safe_dump(data), capsys)
    assert "has no MNIST data" in message
    assert sorted(all_paths(tmp_path)) == sorted(
        {"bad.yaml"} | ({"db", "db/other.txt"} if storage in where else set()))


def before_kept(before: dict[str, bytes]) -> dict[str, bytes]:
    return {k[len("kept/"):]: v for k, v in before.items() if k.startswith("kept/")}


def test_malformed_yaml(existing, capsys):
    tmp, _ = existing
    before = folder_bytes(tmp / "runs")
    message = run_cli(tmp, "study: kept\nsearch: [unclosed\n", capsys)
    assert "is not valid YAML at line 3, column 1" in message
    assert folder_bytes(tmp / "runs") == before


@pytest.mark.parametrize("where", ["output_dir", "storage"])
def test_a_folder_that_cannot_be_written(where, existing, capsys):
    tmp, base = existing
    blocker = tmp / "a-file"            # a path under a regular file can't be a folder, even
    blocker.write_text("x")             # for root (chmod would not stop root)
    change = ({"output_dir": str(blocker / "runs")} if where == "output_dir"
              else {"search": {"storage": f"sqlite:///{blocker}/sub/study.db"}})
    before = folder_bytes(tmp / "runs")
    message = run_cli(tmp, yaml.safe_dump(merge(base, change)), capsys)
    expected = ("output_dir: the study folder must be writable, cannot write" if where ==
                "output_dir" else "search.storage: cannot open storage 'sqlite:///")
    assert message.startswith(expected) and str(blocker) in message, message
    assert folder_bytes(tmp / "runs") == before


def foreign_files(tmp: Path) -> dict[str, bytes]:
    def saved(obj) -> bytes:
        path = tmp / "obj.pt"
        torch.save(obj, path)
        return path.read_bytes()

    return {
        "garbage": b"\x00not a checkpoint" * 10,
        "truncated": saved({"key": "k", "state_dict": {"w": torch.ones(100)}})[:200],
        "pickled module": saved(nn.Linear(2, 2)),            # needs code to load: refused
        "foreign weights": saved({"weights": torch.ones(3)}),
    }


@pytest.mark.parametrize("kind", ["garbage", "truncated", "pickled module", "foreign weights"])
def test_a_corrupt_or_foreign_dense_checkpoint_is_refused_not_overwritten(kind, existing,
                                                                          capsys):
    tmp, base = existing
    data = merge(base, {"study": f"foreign-{kind.replace(' ', '-')}"})
    folder = Path(data["output_dir"]) / data["study"]
    folder.mkdir(parents=True)
    content = foreign_files(tmp)[kind]
    (folder / "dense.pt").write_bytes(content)
    message = run_cli(tmp, yaml.safe_dump(data), capsys)
    if kind == "foreign weights":
        assert "is not a checkpoint written by sparsity-search" in message
    else:
        assert "is corrupt or not a weights-only checkpoint" in message
    assert message.startswith("dense reference") and message.endswith("delete it to retrain")
    assert (folder / "dense.pt").read_bytes() == content


def test_one_line_from_the_real_command(existing, tmp_path):
    """The same through ``python -m search``: no traceback, no warning, exit 2."""
    import subprocess

    from conftest import REPO_ROOT, cli_command, cli_env

    tmp, base = existing
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(merge(base, {"space": {"bits": [4, 8]}})))
    proc = subprocess.run(cli_command("run", str(path)), capture_output=True, text=True,
                          cwd=REPO_ROOT, env=cli_env(), timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: study 'kept' exists with a different search space")


def test_a_study_folder_whose_storage_lacks_the_study_is_not_started_over(existing, tmp_path,
                                                                             capsys):
    """A storage given by a relative path read from another folder (or moved) holds no such
    study: the run is refused instead of starting the study again over its folder's tables."""
    tmp, base = existing
    before = folder_bytes(tmp / "runs" / "kept")
    moved = merge(base, {"search": {"storage": f"journal:///{tmp_path / 'elsewhere.log'}"}})
    message = run_cli(tmp, yaml.safe_dump(moved), capsys)
    assert "holds study 'kept' (config.yaml), but storage" in message, message
    assert "has no study of that name" in message and "absolute path" in message
    assert folder_bytes(tmp / "runs" / "kept") == before
    assert not (tmp_path / "elsewhere.log").exists()        # nothing left behind either


def test_a_folder_check_that_writes_nothing_still_tries_the_folder(tmp_path):
    """``create=False`` (export / report --to, checked before retraining) trusted permissions:
    as root they allow /proc, where mkdir then failed with a traceback after the retraining. The
    check now makes the missing folders and removes them again."""
    from search.run.preflight import check_writable_folder
    from search.schema import ConfigError

    with pytest.raises(ConfigError, match=r"^--to: the export folder must be writable, cannot "
                                          r"write '/proc/nope/sub' \("):
        check_writable_folder("/proc/nope/sub", "--to", "the export folder", create=False)
    target = tmp_path / "new" / "deeper"
    assert check_writable_folder(target, "--to", "the export folder", create=False) == target
    assert list(tmp_path.iterdir()) == []           # the probe left nothing behind
