"""The Python API on the user's own model, data, loss and metric."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from search.api import run_search
from search.schema import ConfigError
from search.decide.export import load_exported

TINY = {"threads": 1, "device": "cpu", "cost": {"measure_latency": False}, "dense": {"epochs": 2, "lr": 0.01},
        "finetune": {"epochs": 1}, "space": {"bits": [8, 32]},
        "search": {"n_trials": 3, "baseline_sparsities": [0.5], "baseline_bits": [8]}}


def blobs(n: int, shape=(1, 6, 6), classes: int = 3, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, *shape, generator=torch.Generator().manual_seed(99))
    return TensorDataset(centres[y] + 0.5 * torch.randn(n, *shape, generator=gen), y)


class UserNet(nn.Module):
    def __init__(self, hidden: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_user_model_data_loss_and_metric_flow_through(tmp_path, capsys):
    loss_calls = []

    def loss(logits, targets):
        loss_calls.append(len(targets))
        return nn.functional.cross_entropy(logits, targets)

    def always_quarter(logits, targets):
        assert logits.shape[1] == 3
        return 0.25

    logs: list[str] = []
    result = run_search(model=UserNet, train=blobs(120), test=blobs(30, seed=1), loss=loss,
                        metric=always_quarter, study="user", output_dir=str(tmp_path),
                        log=logs.append, **TINY)
    trials = result.trials()
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    assert (trials["accuracy"] == 0.25).all() and (trials["test_accuracy"] == 0.25).all()
    assert result.dense_reference()["accuracy"] == 0.25
    assert result.metric == "always_quarter"
    assert result.sources["model"].startswith("python: ") and \
        result.sources["model"].endswith("UserNet")
    assert result.sources["data"] == "python: torch.utils.data.dataset.TensorDataset"
    assert {"sparsity.body.1", "bits.head"} <= set(trials.columns)
    # Dense reference (2 epochs) and 3 fine-tunings (1 epoch each) over the carved training split.
    train_size = len(result.context.data.train)
    assert sum(loss_calls) == (2 + 3) * train_size and len(result.context.data.test) == 30
    front = result.front()
    assert not front.empty and set(front["trial"]) <= set(trials["trial"])
    assert any("training the dense reference" in line for line in logs)

    # The same inputs again: dense reference reused from the study folder, nothing retrained.
    logs.clear()
    run_search(model=UserNet, train=blobs(120), test=blobs(30, seed=1), loss=loss,
               metric=always_quarter, study="user", output_dir=str(tmp_path), log=logs.append,
               **TINY)
    assert not any("dense reference" in line for line in logs)
    # Another model under the same study name: refused before anything trains, and the study's
    # dense reference, which its trials were measured against, is left as it was.
    dense = (tmp_path / "user" / "dense.pt").read_bytes()
    with pytest.raises(ConfigError, match="dense reference .* was trained with other settings"):
        run_search(model=lambda: UserNet(hidden=8), train=blobs(120), test=blobs(30, seed=1),
                   loss=loss, metric=always_quarter, study="user", output_dir=str(tmp_path),
                   log=logs.append, **TINY)
    assert not any("retraining" in line for line in logs)
    assert (tmp_path / "user" / "dense.pt").read_bytes() == dense
    # A worker joining it from the command line (the saved config names no Python model)
    # refuses too, instead of retraining the study's reference under its trials.
    from search.cli.main import main
    assert main(["worker", "--study", "user", "--output-dir", str(tmp_path)]) == 2
    assert (tmp_path / "user" / "dense.pt").read_bytes() == dense
    # The saved config says its model and data sections are not what ran, and inspect refuses
    # to report the default CNN it names as the study's model.
    saved = (tmp_path / "user" / "config.yaml").read_text().splitlines()
    assert saved[0].startswith("# model: python: ") and "UserNet (passed to run_search" in saved[0]
    assert saved[1] == ("# data: python: torch.utils.data.dataset.TensorDataset (passed to "
                        "run_search; the data section below is not what ran)")
    capsys.readouterr()
    assert main(["sensitivity", "--study", "user", "--output-dir", str(tmp_path)]) == 2
    assert (tmp_path / "user" / "dense.pt").read_bytes() == dense   # not retrained as the CNN
    assert not (tmp_path / "user" / "sensitivity").exists()
    assert main(["inspect", "--study", "user", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: study 'user' ran a model passed from "
                                              "Python (python: ")
    with pytest.raises(ConfigError, match="created with metric 'always_quarter'.*'f1_macro'"):
        run_search(model=UserNet, train=blobs(120), test=blobs(30, seed=1), loss=loss,
                   metric="f1_macro", study="user", output_dir=str(tmp_path), log=logs.append,
                   **TINY)


def test_module_instance_dataloaders_and_named_metric(tmp_path):
    torch.manual_seed(0)
    train = DataLoader(blobs(150), batch_size=16, shuffle=True)
    logs: list[str] = []
    result = run_search(model=UserNet(hidden=12), train=train, metric="f1_macro",
                        study="loaders", output_dir=str(tmp_path), log=logs.append,
                        preprocessing="blobs: Gaussian clusters, not scaled", **TINY)
    assert result.context.data.preprocessing == {
        "known": True, "description": "blobs: Gaussian clusters, not scaled", "declared_by": "user"}
    progress = [line for line in logs if "MFLOPs=" in line]
    assert progress and all("val_f1_macro=" in line and "val_acc=" not in line
                            for line in progress)
    data = result.context.data
    assert isinstance(data.train, DataLoader) and data.train.batch_size == 16
    assert len(data.test.dataset) == round(0.25 * 150)        # carved with the default fraction
    trials = result.trials()
    assert result.metric == "f1_macro" and trials["accuracy"].between(0, 1).all()
    assert result.dense_reference()["accuracy"] > 0.5        # blobs are easy: the model learned
    assert (result.folder / "pareto.csv").is_file()
    # the front's headings and pick's line name the metric, not "accuracy" / "val_acc"
    from search.decide.front_formats import render_front
    from search.decide.pick import format_pick
    text = render_front(result.front(), "table", result.front_display(floor=0.5))
    assert "val_f1_macro" in text.splitlines()[2] and "val_acc" not in text
    assert "test_f1_macro" in text.splitlines()[2] and "test_acc" not in text
    assert " front points shown: f1_macro >= " in text.splitlines()[0]
    assert "val_f1_macro=" in format_pick(result.pick(knee=True), result.metric)
    # export takes its example input from the validation loader's first batch
    exported = result.export(int(trials["trial"].iloc[-1]), log=lambda _: None)
    program = torch.export.load(str(exported.folder / exported.manifest["program"]["file"]))
    x = next(iter(data.val))[0][:2]
    assert exported.manifest["program"]["example_input_shape"] == list(x.shape)
    assert exported.manifest["model_source"].startswith("python: ")
    with pytest.raises(ConfigError, match="came from Python.*pass model_factory"):
        load_exported(exported.folder)       # config.yaml names no model it could rebuild
    small = load_exported(exported.folder, model_factory=lambda: UserNet(hidden=12))
    assert torch.allclose(program.module()(x), small(x), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_torchvision_model_two_trial_channel_search_on_32x32(tmp_path, arch):
    result = run_search(model=f"torchvision:{arch}", train=blobs(24, (3, 32, 32)),
                        test=blobs(8, (3, 32, 32), seed=1), study=arch,
                        output_dir=str(tmp_path), log=lambda _: None,
                        **{**TINY, "dense": {"epochs": 1}, "data": {"batch_size": 16},
                           "space": {"bits": [8, 32], "granularities": ["channel"],
                                     "criteria": ["magnitude"]},
                           "search": {**TINY["search"], "n_trials": 2}})
    trials = result.trials()
    assert len(trials) == 2 and set(trials["state"]) == {"COMPLETE"}, trials.get("fail_reason")
    assert len(result.space.layers) == {"resnet18": 21, "mobilenet_v2": 53}[arch]
    # Trial 1 is the uniform baseline: channels physically removed, so fewer real FLOPs.
    assert trials.loc[1, "granularity"] == "channel"
    assert trials.loc[1, "flops"] < 0.8 * trials.loc[0, "flops"]
    # Export loads and runs: channels physically gone, both the state-dict and torch.export forms.
    exported = result.export(1, log=lambda _: None)
    assert exported.manifest["preprocessing"]["known"] is False      # nothing was declared
    assert exported.manifest["preprocessing"]["description"].startswith("unknown: ")
    small = load_exported(exported.folder)
    dense_params = sum(p.numel() for p in result.context.model_factory().parameters())
    assert sum(p.numel() for p in small.parameters()) < 0.8 * dense_params
    batch = torch.randn(2, 3, 32, 32)
    assert small(batch).shape == (2, 3)
    program = torch.export.load(str(exported.folder / exported.manifest["program"]["file"]))
    assert torch.allclose(program.module()(batch), small(batch), atol=1e-4)


def test_bad_api_inputs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="metric must be one of .*'top5'.*got 'top3'"):
        run_search(model=UserNet, train=blobs(30), metric="top3", output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="val/test were given without train"):
        run_search(model=UserNet, test=blobs(30), output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="unknown key 'serch'"):
        run_search(model=UserNet, train=blobs(30), serch={"n_trials": 1},
                   output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="factory returned int"):
        run_search(model=lambda: 3, train=blobs(30), output_dir=str(tmp_path), **TINY)
    # A space error names the Python model, not the config's default ('cnn').
    class NoLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(36, 3))

        def forward(self, x):
            return x.flatten(1) @ self.w

    with pytest.raises(ConfigError, match=r"no prunable Conv2d/Linear layer \(model 'python: "
                                          r"test_byo_api\.test_bad_api_inputs_are_config_"
                                          r"errors\.<locals>\.NoLayer'\)$"):
        run_search(model=NoLayer, train=blobs(60), output_dir=str(tmp_path), study="nolayer",
                   **TINY)
    # An empty split trained the dense reference, then failed in torch.cat.
    x, y = blobs(60).tensors
    with pytest.raises(ConfigError) as empty:
        run_search(model=UserNet, train=blobs(60), val=TensorDataset(x[:0], y[:0]),
                   output_dir=str(tmp_path), study="empty", **TINY)
    assert str(empty.value) == ("the val split is empty (give it samples, or leave it out and "
                                "it is carved from train)")
    assert not (tmp_path / "empty").exists()
    # Labels of shape (N, 1): torch's "0D or 1D target tensor expected" after the dense start.
    with pytest.raises(ConfigError) as column:
        run_search(model=UserNet, train=TensorDataset(x, y[:, None]), output_dir=str(tmp_path),
                   study="column", log=lambda _: None, **TINY)
    assert str(column.value).endswith("the labels have shape [32, 1] for logits of shape [32, "
                                      "3]: cross-entropy needs one class index per sample, "
                                      "shape [32] (e.g. y.view(-1))")


def test_keyword_options_merge_into_the_config_section_by_section(tmp_path):
    from search.api import resolve_config

    path = tmp_path / "study.yaml"
    path.write_text("study: s\nsearch: {n_trials: 9, sampler: tpe}\nmodel: torchvision:resnet18\n")
    config = resolve_config(path, {"search": {"n_trials": 2}, "device": "cpu"})
    assert config.search.n_trials == 2 and config.search.sampler == "tpe"   # merged, not replaced
    assert config.model.name == "torchvision:resnet18" and config.device == "cpu"
    assert resolve_config({"data": "torchvision:MNIST"}, {}).data.name == "torchvision:MNIST"
    # One setting given as a mapping replaces the base's, as in a YAML file: merged,
    # objectives={accuracy: max} kept flops and energy beside it.
    given = resolve_config(None, {"search": {"objectives": {"accuracy": "max",
                                                            "params_nonzero": "min"}}})
    assert given.search.objectives.metrics == ["accuracy", "params_nonzero"]
    assert resolve_config(None, {"search": {"objectives": {"accuracy": "max"}}}
                          ).search.objectives.metrics == ["accuracy"]
    # Another model keeps none of the base model's options (they were for that model).
    other = resolve_config({"model": {"name": "cnn", "options": {"width": 8}}},
                           {"model": {"name": "mlp"}})   # as run_search(model="mlp") passes it
    assert other.model.name == "mlp" and other.model.options == {}
    same = resolve_config({"model": {"name": "cnn", "options": {"width": 8}}},
                          {"model": {"options": {"width": 4}}})
    assert same.model.name == "cnn" and same.model.options == {"width": 4}


def test_a_reopened_python_study_takes_its_data_as_run_search_took_it(tmp_path):
    """Reopened from disk (another process, say), a study of Python objects is exported with
    model_factory= and data= given as run_search took them: a split or a (train, test) tuple."""
    from search.api import open_existing
    from search.config import config_from_dict

    result = run_search(model=UserNet, train=blobs(120), test=blobs(30, seed=1), study="again",
                        output_dir=str(tmp_path), log=lambda _: None,
                        preprocessing="blobs, used as drawn", **TINY)
    done = result.trials()
    trial = int(done[done["state"] == "COMPLETE"]["trial"].iloc[-1])
    reopened = open_existing(config_from_dict({**TINY, "study": "again",
                                               "output_dir": str(tmp_path)}))
    exported = reopened.export(trial, model_factory=UserNet, log=lambda _: None,
                               data=(blobs(120), blobs(30, seed=1)))     # (train, test)
    assert exported.manifest["reproduction"]["within_tolerance"]
    # what run_search was told about the data is said again (it read "unknown" from disk)
    assert exported.manifest["preprocessing"]["description"] == "blobs, used as drawn"
    with pytest.raises(ConfigError, match=r"data= takes a split or a \(train, val, test\) tuple"):
        reopened.export(trial, model_factory=UserNet, data=(), log=lambda _: None)


def test_a_script_s_model_is_the_same_model_when_another_script_imports_it(tmp_path):
    """A class is ``__main__.Net`` in the script that runs the study and ``script.Net`` in the
    one that imports it to export: the dense reference's key names the class without its
    module (an export was refused as "trained with other settings"). A ``dense.pt`` keyed the
    older way (module included) is still accepted."""
    from search.api import open_existing
    from search.config import config_from_dict
    from search.decide.retrain import as_bundle
    from search.run.dense_keys import user_dense_keys
    from trainers.checkpoint import load_checkpoint, save_checkpoint

    class Net(UserNet):
        pass

    Net.__module__ = "__main__"                          # the script, run
    result = run_search(model=Net, train=blobs(120), test=blobs(30, seed=1), study="script",
                        output_dir=str(tmp_path), log=lambda _: None, **TINY)
    trial = int(result.trials().query("state == 'COMPLETE'")["trial"].iloc[-1])
    Net.__module__ = "script"                            # the script, imported by another
    reopened = open_existing(config_from_dict({**TINY, "study": "script",
                                               "output_dir": str(tmp_path)}))
    data = (blobs(120), blobs(30, seed=1))
    exported = reopened.export(trial, model_factory=Net, data=data, log=lambda _: None)
    assert exported.manifest["reproduction"]["within_tolerance"]
    dense = result.folder / "dense.pt"
    stored = load_checkpoint(dense)
    config = config_from_dict({**TINY, "study": "script", "output_dir": str(tmp_path)})
    new, older = user_dense_keys(Net(), as_bundle(data, config), config)
    assert stored["key"] == new != older
    save_checkpoint({**stored, "key": older}, dense)     # as a study made before keyed it
    again = reopened.export(trial, model_factory=Net, data=data, to=tmp_path / "again",
                            log=lambda _: None)
    assert again.manifest["reproduction"]["within_tolerance"]


def test_a_tiny_validation_split_is_pointed_out(tmp_path):
    """18 validation predictions: an accuracy moves in steps of 0.056; the run says so."""
    lines: list[str] = []
    run_search(model=UserNet, train=blobs(120), study="few", log=lines.append,
               output_dir=str(tmp_path),
               **{**TINY, "search": {**TINY["search"], "n_trials": 1}})
    notes = [line for line in lines if line.startswith("note: the validation split has")]
    assert len(notes) == 1 and "18 predictions" in notes[0] and "steps of 0.056" in notes[0]



def test_a_metric_below_zero_gets_a_hypervolume_and_takes_a_negative_bound(tmp_path):
    """A negative loss as the metric (higher is better, always < 0): the status's hypervolume and
    the screening's gains were 0 against the reference 0, and pick refused a negative bound."""
    def neg_loss(logits, targets):
        return -nn.functional.cross_entropy(logits, targets).item()

    result = run_search(model=UserNet, train=blobs(120), test=blobs(30, seed=1), metric=neg_loss,
                        study="negative", output_dir=str(tmp_path), log=lambda _: None,
                        **{**TINY, "search": {**TINY["search"], "n_trials": 4}})
    done = result.trials().query("state == 'COMPLETE'")
    assert (done["accuracy"] < 0).all()
    assert result.status().hypervolume > 0.0
    bound = float(done["accuracy"].median())
    picked = result.pick(min_accuracy=bound)
    assert picked and picked.row["accuracy"] >= bound
    with pytest.raises(ConfigError, match=r"min_accuracy must be in \[0, 1\]"):
        run_search(model=UserNet, train=blobs(120), test=blobs(30, seed=1), metric="accuracy",
                   study="fraction", output_dir=str(tmp_path), log=lambda _: None,
                   **{**TINY, "search": {**TINY["search"], "n_trials": 1}}).pick(min_accuracy=bound)


def test_int32_labels_train_as_class_indices(tmp_path):
    """``.int()`` labels (int32): cross-entropy takes int64 or uint8 only, and dense training
    crashed with "expected target dtype to be Long or Byte"; a loader's batches too."""
    data = blobs(120)
    x, y = data.tensors
    int32 = TensorDataset(x, y.int())
    result = run_search(model=UserNet, train=int32, test=TensorDataset(x[:30], y[:30].int()),
                        study="int32", output_dir=str(tmp_path), log=lambda _: None,
                        **{**TINY, "search": {**TINY["search"], "n_trials": 2}})
    assert set(result.trials()["state"]) == {"COMPLETE"}
    assert result.dense_reference()["accuracy"] > 0.5
    loader = DataLoader(int32, batch_size=16)
    run_search(model=UserNet, train=loader, study="int32_loader", output_dir=str(tmp_path),
               log=lambda _: None, **{**TINY, "search": {**TINY["search"], "n_trials": 1}})


def test_a_one_sample_last_batch_under_batch_norm_is_said_in_the_data_s_terms(tmp_path):
    """33 training samples at batch size 32 leave a last batch of 1, which BatchNorm1d refuses
    in training: torch's ValueError traceback became one message naming the sizes and a fix,
    and the refused new study leaves nothing behind."""
    from trainers.errors import SetupError

    x, y = blobs(60).tensors

    def model():
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.BatchNorm1d(8), nn.ReLU(),
                             nn.Linear(8, 3))

    with pytest.raises(SetupError) as refused:
        run_search(model=model, train=TensorDataset(x[:33], y[:33]),
                   val=TensorDataset(x[33:50], y[33:50]), test=TensorDataset(x[50:], y[50:]),
                   study="bn", output_dir=str(tmp_path), log=lambda _: None, **TINY)
    assert str(refused.value).startswith(
        "the last training batch holds 1 sample (33 training samples, data.batch_size 32), and "
        "the model's batch norm cannot train on one value per channel (")
    assert str(refused.value).endswith("use a data.batch_size that leaves more in the last batch "
                                       "(e.g. 33), or one sample more or fewer in the training "
                                       "split")
    assert not (tmp_path / "bn").exists()


def test_a_drop_last_loader_is_evaluated_on_every_sample(tmp_path):
    """``drop_last=True`` is the user's choice for training; a metric over the validation or test
    split counted only whole batches (val 40 = 2 x 16 + 8: accuracies in 32nds, the interval
    computed over 40), and the carved test split inherited it."""
    def noisy(n: int, seed: int) -> TensorDataset:   # a third of the labels random: no 1.0
        x, y = blobs(n, seed=seed).tensors
        flip = torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.33
        return TensorDataset(x, torch.where(flip, (y + 1) % 3, y))

    train = DataLoader(noisy(150, 0), batch_size=16, shuffle=True, drop_last=True)
    val = DataLoader(noisy(40, 2), batch_size=16, drop_last=True)
    result = run_search(model=UserNet, train=train, val=val, study="drop_last",
                        output_dir=str(tmp_path), log=lambda _: None, **TINY)
    test_size = len(result.context.data.test.dataset)
    assert result.val_samples == 40 and test_size % 16 != 0
    trials = result.trials()
    rows = [result.dense_reference()] + trials.to_dict("records")
    for row in rows:
        assert abs(row["accuracy"] * 40 - round(row["accuracy"] * 40)) < 1e-4, row
        assert abs(row["test_accuracy"] * test_size - round(row["test_accuracy"] * test_size)) \
            < 1e-4, row


def test_a_lambda_metric_is_named_custom_metric_and_older_studies_resume(tmp_path):
    """A lambda's name, ``<lambda>``, headed the tables as ``val_<lambda>``."""
    def run(n_trials):
        return run_search(model=UserNet, train=blobs(90), metric=lambda logits, y: 0.5,
                          study="lam", output_dir=str(tmp_path), log=lambda _: None,
                          **{**TINY, "search": {**TINY["search"], "n_trials": n_trials}})

    result = run(1)
    assert result.metric == "custom_metric"
    result.study.set_user_attr("metric", "<lambda>")    # as a study made before recorded it
    assert len(run(2).trials()) == 2                   # resumed, not refused
