"""export: rebuild, retrain, fold, quantize, write; the exported model reproduces its trial."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from search.api import open_existing
from search.config import load_config
from search.decide.export import load_exported
from spaces.candidate import Candidate
from trainers.checkpoint import load_checkpoint
from trainers.data import load_data
from trainers.training import measure_metric

TRIAL = 1   # the enqueued uniform baseline: 50% sparsity in every searched layer at 8 bits


@pytest.fixture(scope="module")
def copied_study(finished_study, tmp_path_factory):
    """A copy of the finished study (export writes into the study folder)."""
    root = tmp_path_factory.mktemp("export") / "runs"
    shutil.copytree(finished_study.folder, root / "finished")
    config = load_config(root / "finished" / "config.yaml").with_overrides(output_dir=str(root))
    return open_existing(config)


@pytest.fixture(scope="module")
def exported(copied_study):
    from search.cli.main import main

    code = main(["export", str(TRIAL), "--output-dir", copied_study.config.output_dir,
                 "--study", "finished"])
    assert code == 0
    folder = copied_study.folder / "exports" / str(TRIAL)
    return folder, json.loads((folder / "manifest.json").read_text())


def test_manifest_records_candidate_metrics_layers_and_versions(exported, copied_study):
    folder, manifest = exported
    trial = copied_study.study.trials[TRIAL]
    assert manifest["trial"] == TRIAL
    assert Candidate.from_flat_dict(manifest["candidate"]) == \
        Candidate.from_flat_dict(trial.user_attrs["candidate"])
    for key in ("accuracy", "test_accuracy", "flops", "energy_uj", "size_bytes"):
        assert manifest["metrics"][key] == pytest.approx(trial.user_attrs[key])
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["program"]["dynamic_batch"] is True
    assert set(manifest["files"].values()) == {p.name for p in folder.iterdir()}
    searched = [row for row in manifest["layers"] if row["sparsity"] > 0]
    assert searched, "the baseline prunes every searched layer"
    for row in manifest["layers"]:
        assert row["bits"] == 8
        assert row["levels_max"] <= 2 ** 8 - 2
        # at least the masked fraction (rounded to whole weights); quantization adds zeros
        assert row["measured_sparsity"] >= row["sparsity"] - 1 / row["params_before"]
        assert row["nonzero_after"] == row["params_after"] - round(
            row["measured_sparsity"] * row["params_after"])


def test_exported_model_reproduces_the_recorded_accuracy(exported, copied_study):
    folder, manifest = exported
    model = load_exported(folder)
    data = load_data(copied_study.config.data)
    recorded = copied_study.study.trials[TRIAL].user_attrs
    val = measure_metric(model, data.val, torch.device("cpu"))
    assert abs(val - recorded["accuracy"]) <= 0.002
    assert abs(measure_metric(model, data.test, torch.device("cpu")) - recorded["test_accuracy"]) <= 0.002
    assert manifest["reproduction"]["within_tolerance"] is True
    # masks are folded in: the zeros are real zeros of plain weights, counted in the manifest
    weights = {row["layer"]: row for row in manifest["layers"]}
    modules = dict(model.named_modules())
    for name, row in weights.items():
        assert int(torch.count_nonzero(modules[name].weight)) == row["nonzero_after"]
    stored = load_checkpoint(folder / "weights.pt")   # weights-only loadable
    assert stored["quantized"] and all(q["codes"].dtype == torch.int8
                                       for q in stored["quantized"].values())


def test_program_loads_with_only_torch(exported, copied_study, tmp_path):
    folder, _ = exported
    val = load_data(copied_study.config.data).val
    x = torch.stack([val[i][0] for i in range(5)])
    torch.save(x, tmp_path / "x.pt")
    script = (
        # Our packages are blocked (an editable install would make them importable): loading
        # the program must not need them.
        "import sys\n"
        "sys.modules.update(dict.fromkeys(['search', 'spaces', 'trainers']))\n"
        "import torch\n"
        f"program = torch.export.load({str(folder / 'model.pt2')!r})\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r})\n"
        "torch.save(program.module()(x), sys.argv[1])\n")
    out = tmp_path / "y.pt"
    # -I: isolated mode, ignores PYTHONPATH and the current folder
    done = subprocess.run([sys.executable, "-I", "-c", script, str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with torch.no_grad():
        ours = load_exported(folder)(x)
    assert torch.allclose(torch.load(out), ours, atol=1e-5)


def test_export_is_deterministic(exported, copied_study, tmp_path):
    folder, _ = exported
    again = copied_study.export(TRIAL, folder=tmp_path / "again", log=lambda line: None)
    first = load_checkpoint(folder / "weights.pt")
    second = load_checkpoint(again.folder / "weights.pt")
    for key, tensor in first["state_dict"].items():
        assert torch.equal(tensor, second["state_dict"][key]), key
    for key, q in first["quantized"].items():
        assert torch.equal(q["codes"], second["quantized"][key]["codes"]), key


def test_export_errors(exported, copied_study, capsys):
    from search.cli.main import main

    where = ["--output-dir", copied_study.config.output_dir, "--study", "finished"]
    assert main(["export", "99", *where]) == 2
    assert "trial must be one of the study's trial numbers 0..6, got 99" in capsys.readouterr().err
    assert main(["export", "--pick", "--max-flops", "1", *where]) == 1
    assert "no completed trial meets --max-flops 1" in capsys.readouterr().out
    assert main(["export", "1", "--knee", *where]) == 2
    assert "not both" in capsys.readouterr().err
    (copied_study.folder / "dense.pt").rename(copied_study.folder / "dense.moved")
    try:
        assert main(["export", "1", *where]) == 2
        assert "dense reference" in capsys.readouterr().err
    finally:
        (copied_study.folder / "dense.moved").rename(copied_study.folder / "dense.pt")


@pytest.mark.slow
def test_channel_pruned_trial_exports_a_physically_smaller_model(finished_study, tmp_path):
    """Channel granularity: the export has fewer channels, still reproduces, and both loaders
    (ours, which resizes the architecture, and torch.export) give the same outputs."""
    from conftest import FINISHED_STUDY
    from search.api import run_search
    from search.config import config_from_dict

    runs = tmp_path / "runs"
    (runs / "channels").mkdir(parents=True)
    shutil.copy(finished_study.folder / "dense.pt", runs / "channels" / "dense.pt")  # same key
    config = config_from_dict({
        **FINISHED_STUDY, "study": "channels", "output_dir": str(runs),
        "space": {"bits": [8, 32], "granularities": ["channel"], "criteria": ["magnitude"]},
        "search": {"n_trials": 2, "baseline_sparsities": [0.5], "baseline_bits": [8],
                   "baselines": ["uniform"]}})
    result = run_search(config, log=lambda line: None)
    lines: list[str] = []
    exported = result.export(1, log=lines.append)
    manifest = exported.manifest
    # how to feed the model: in the manifest and in the export's output
    assert manifest["preprocessing"] == result.context.data.preprocessing
    assert lines[-1].startswith("input: shape [1, 8, 8] per sample; preprocessing: synthetic "
                                "inputs, used as generated")
    assert manifest["channels_removed"] is True
    assert manifest["reproduction"]["within_tolerance"] is True
    shrunk = [row for row in manifest["layers"] if row["shape_after"][0] < row["shape_before"][0]]
    assert shrunk, manifest["layers"]
    assert manifest["params"]["exported_total"] < manifest["params"]["dense_total"]
    model = load_exported(exported.folder)
    x = torch.stack([load_data(config.data).val[i][0] for i in range(3)])
    program = torch.export.load(str(exported.folder / "model.pt2")).module()
    with torch.no_grad():
        assert torch.allclose(model(x), program(x), atol=1e-5)


def test_a_study_of_python_objects_asks_for_them(copied_study):
    from search.schema import ConfigError

    copied_study.study.set_user_attr("sources", {"model": "python: mine.Net", "data": "config"})
    try:
        with pytest.raises(ConfigError, match=r"model came from Python \(python: mine.Net\); "
                                              r".*pass model_factory=\.\.\."):
            copied_study.export(2, log=lambda line: None)
    finally:
        copied_study.study.set_user_attr("sources", {"model": "config", "data": "config"})


class _Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Linear(8, 16)
        self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        h = self.emb(x)
        return self.head((h + self.attn(h, h, h)[0]).mean(1))


class _Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = torch.nn.Linear(8, 16)
        self.rnn = torch.nn.LSTM(16, 12, batch_first=True)
        self.fc = torch.nn.Linear(12, 4)

    def forward(self, x):
        return self.fc(self.rnn(torch.relu(self.pre(x)))[0][:, -1])


@pytest.mark.parametrize("net, granularity", [(_Attention, "unstructured"),
                                              (_Recurrent, "channel")])
def test_load_exported_rebuilds_a_python_model_as_the_study_had_it(net, granularity, tmp_path):
    """With model_factory=: the factory's attention is split as the study's was (q_proj was
    missing), and an LSTM whose input lost channels takes the smaller input (it kept 16)."""
    from torch.utils.data import TensorDataset

    from search.api import run_search

    gen = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 4
    x = torch.randn(4, 6, 8, generator=gen)[y] + 0.3 * torch.randn(120, 6, 8, generator=gen)
    result = run_search(model=net, train=TensorDataset(x[:90], y[:90]),
                        test=TensorDataset(x[90:], y[90:]), study="s",
                        output_dir=str(tmp_path), threads=1, cost={"measure_latency": False},
                        dense={"epochs": 2}, finetune={"epochs": 1},
                        space={"granularities": [granularity],
                               "criteria": ["l2" if granularity == "channel" else "magnitude"]},
                        search={"n_trials": 2, "baselines": ["uniform"],
                                "baseline_sparsities": [0.5], "baseline_bits": [8]},
                        log=lambda _: None)
    exported = result.export(1)     # the uniform baseline (trial 0: the dense model)
    program = torch.export.load(str(exported.folder / "model.pt2")).module()
    model = load_exported(exported.folder, model_factory=net)
    if granularity == "channel":
        assert model.rnn.input_size < 16
    with torch.no_grad():
        assert torch.allclose(model(x[:3]), program(x[:3]), atol=1e-5)
