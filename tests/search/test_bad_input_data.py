"""Bad input found in the user's data, model or training settings (labels, model outputs, a
factory that raises, a diverging dense training, a bad ``--workers``): one line `error: ...`
naming the source, the rule and the value; exit status 2; a new study refused this way leaves
nothing behind, an existing one is left as it was."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import TensorDataset

from conftest import tiny_config_dict
from search.api import run_search
from search.cli.main import EXIT_BAD_INPUT, main
from search.schema import ConfigError
from trainers.data.labels import label_problem
from trainers.training import ModelOutputError, check_output

# A user's module: 6x6 blobs in 3 classes and a tiny net, plus the broken variants.
USER_MODULE = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import Dataset, TensorDataset

    def _xy(n, seed=0):
        gen = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 3
        centres = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(9))
        return centres[y] + 0.5 * torch.randn(n, 1, 6, 6, generator=gen), y

    def good():
        x, y = _xy(90)
        return {"train": TensorDataset(x[:60], y[:60]), "test": TensorDataset(x[60:], y[60:]),
                "num_classes": 3}

    def label_12():                      # out of range for the 3 classes it declares
        x, y = _xy(90)
        y = y.clone(); y[5] = 12
        return {"train": TensorDataset(x[:60], y[:60]), "test": TensorDataset(x[60:], y[60:]),
                "num_classes": 3}

    def label_minus_1():                 # classes inferred (largest + 1): -1 is the bad one
        x, y = _xy(90)
        y = y.clone(); y[5] = -1
        return TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])

    def float_labels():
        x, y = _xy(90)
        return TensorDataset(x[:60], y[:60].float()), TensorDataset(x[60:], y[60:].float())

    class Pairs(Dataset):                # labels only seen batch by batch (no cheap read)
        def __init__(self, x, y): self.x, self.y = x, y
        def __len__(self): return len(self.x)
        def __getitem__(self, i): return self.x[i], int(self.y[i])

    def pairs_label_12():
        x, y = _xy(90)
        y = y.clone(); y[5] = 12
        return {"train": Pairs(x[:60], y[:60]), "test": Pairs(x[60:], y[60:]), "num_classes": 3}

    def broken_data(seed=0):
        raise ValueError("dataset broken")

    class Net(nn.Module):
        def __init__(self, num_classes):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU())
            self.head = nn.Linear(8, num_classes)

        def forward(self, x):
            return self.head(self.body(x))

    class DictNet(Net):
        def forward(self, x):
            return {"logits": super().forward(x)}

    class TupleNet(Net):
        def forward(self, x):
            logits = super().forward(x)
            return logits, logits.softmax(-1)

    def net(num_classes):
        return Net(num_classes)

    def dict_net(num_classes):
        return DictNet(num_classes)

    def tuple_net(num_classes):
        return TupleNet(num_classes)

    def broken_net(num_classes):
        raise RuntimeError("my factory is broken")
""")

QUICK = {"threads": 1, "device": "cpu", "cost": {"measure_latency": False},
         "dense": {"epochs": 1, "lr": 0.01}, "finetune": {"epochs": 1},
         "space": {"bits": [8, 32]},
         "search": {"n_trials": 2, "baseline_sparsities": [0.5], "baseline_bits": [8]}}


def user_config(tmp: Path, model: str = "net", data: str = "good", **changes) -> dict:
    module = tmp / "userbad.py"
    if not module.exists():
        module.write_text(USER_MODULE)
    return {"study": "new", "output_dir": str(tmp / "runs"), **QUICK,
            "model": {"name": f"{module}:{model}"}, "data": {"name": f"{module}:{data}"},
            **changes}


def run_cli(tmp: Path, config: dict, capsys, *extra: str, command: str = "run") -> str:
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main([command, str(path), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BAD_INPUT, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0][len("error: "):]


def all_paths(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if "__pycache__" not in p.parts}


LEFT_BY_THE_TEST = {"bad.yaml", "userbad.py"}

CASES = {
    "label above the classes": (
        {"data": "label_12"},
        ["data '", "userbad.py:label_12': the train split's labels must be class indices in "
         "[0, 3) for 3 classes (num_classes), got 12 (1 of "]),
    "negative label": (
        {"data": "label_minus_1"},
        ["userbad.py:label_minus_1': the train split's labels must be class indices in [0, 3)",
         "got -1 (1 of "]),
    "float labels": (
        {"data": "float_labels"},
        ["userbad.py:float_labels': the train split's labels must be integer class indices for "
         "the default loss (cross-entropy), got float32 labels", "convert them to integers"]),
    "label above the classes, seen in a batch": (
        {"data": "pairs_label_12"},
        ["userbad.py:pairs_label_12': the labels must be class indices in [0, 3) for 3 outputs "
         "of the model, got 12"]),
    "dict output": (
        {"model": "dict_net"},
        ["model '", "userbad.py:dict_net': forward must return one logits tensor (batch, "
         "classes), got a dict with keys ['logits']", "out['logits']", "loss="]),
    "tuple output": (
        {"model": "tuple_net"},
        ["userbad.py:tuple_net': forward must return one logits tensor",
         "got a tuple of 2 (Tensor, Tensor)", "out[0]"]),
    "model factory raises": (
        {"model": "broken_net"},
        ["model factory '", "userbad.py:broken_net' raised RuntimeError: my factory is broken"]),
    "data factory raises": (
        {"data": "broken_data"},
        ["data factory '", "userbad.py:broken_data' raised ValueError: dataset broken"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_user_code_or_data_one_line_exit_2_nothing_left(case, tmp_path, capsys):
    change, expected = CASES[case]
    message = run_cli(tmp_path, user_config(tmp_path, **change), capsys)
    for part in expected:
        assert part in message, message
    assert all_paths(tmp_path) == LEFT_BY_THE_TEST     # no study folder, no study.db


def test_inspect_and_run_say_the_same_of_a_raising_factory(tmp_path, capsys):
    config = user_config(tmp_path, model="broken_net")
    said = "userbad.py:broken_net' raised RuntimeError: my factory is broken"
    inspected, ran = (run_cli(tmp_path, config, capsys, command="inspect"),
                      run_cli(tmp_path, config, capsys))
    assert said in inspected and said in ran
    assert inspected == ran and inspected.startswith("model factory '")   # one wording, one prefix


def test_diverging_dense_training_names_the_dense_settings(tmp_path, capsys):
    data = tiny_config_dict(tmp_path)
    data["dense"] = {"epochs": 1, "lr": 1.0e6, "optimizer": "sgd"}
    message = run_cli(tmp_path, data, capsys)
    assert message.startswith("dense: training the dense reference diverged (TrainingDiverged: "
                              "loss became "), message
    assert "dense.optimizer 'sgd', dense.lr 1e+06" in message and "lower dense.lr" in message
    assert all_paths(tmp_path) == {"bad.yaml"}


@pytest.mark.parametrize("flag, expected", [
    (["--workers", "0"], "parallel.workers must be >= 1, got 0"),
    (["--address", "nohost"], "ray.address must be HOST:PORT, ray://HOST:PORT or 'auto', "
                              "got 'nohost'"),
])
def test_a_bad_parallel_flag_is_refused_like_the_yaml_key(flag, expected, tmp_path, capsys):
    assert run_cli(tmp_path, tiny_config_dict(tmp_path), capsys, *flag) == expected
    yaml_key = ({"parallel": {"workers": 0}} if flag[0] == "--workers"
                else {"ray": {"address": "nohost"}})
    assert run_cli(tmp_path, {**tiny_config_dict(tmp_path), **yaml_key}, capsys) == expected
    assert all_paths(tmp_path) == {"bad.yaml"}


def test_an_existing_study_whose_data_went_bad_is_refused_and_left_as_it_was(tmp_path, capsys):
    """The same config, but the data factory now yields a bad label: refused before anything
    trains or writes (the cached dense reference would otherwise hide it until fine-tuning)."""
    config = user_config(tmp_path, data="good", search={**QUICK["search"], "n_trials": 1})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "study.yaml")]) == 0
    capsys.readouterr()
    folder = tmp_path / "runs" / "new"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    module = tmp_path / "userbad.py"
    module.write_text(module.read_text().replace(
        "def good():\n    x, y = _xy(90)\n", "def good():\n    x, y = _xy(90)\n    y[7] = 5\n"))
    import sys
    for name in [n for n, m in sys.modules.items()          # the file is loaded once per path
                 if getattr(m, "__file__", None) == str(module.resolve())]:
        del sys.modules[name]
    message = run_cli(tmp_path, config, capsys)
    assert "userbad.py:good': the train split's labels must be class indices in [0, 3)" in message
    assert "got 5" in message
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


# --- The Python API: the same refusals, and a user's own loss is trusted with its targets.

def blobs(n: int, classes: int = 3, seed: int = 0, float_labels: bool = False) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(classes, 1, 6, 6, generator=torch.Generator().manual_seed(9))[y]
    return TensorDataset(x + 0.5 * torch.randn(n, 1, 6, 6, generator=gen),
                         y.float() if float_labels else y)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


class DictNet(Net):
    def forward(self, x):
        return {"logits": super().forward(x)}


def test_float_labels_are_fine_with_the_users_own_loss(tmp_path):
    def loss(logits, targets):           # float targets are this loss's business
        return nn.functional.cross_entropy(logits, targets.long())

    result = run_search(model=Net, train=blobs(60, float_labels=True),
                        test=blobs(30, seed=1, float_labels=True), loss=loss, study="own-loss",
                        output_dir=str(tmp_path), log=lambda _: None,
                        **{**QUICK, "search": {**QUICK["search"], "n_trials": 1}})
    assert set(result.trials()["state"]) == {"COMPLETE"}


def test_float_labels_without_a_loss_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"labels must be integer class indices for the default "
                                          r"loss \(cross-entropy\), got float32 labels"):
        run_search(model=Net, train=blobs(60, float_labels=True), study="no-loss",
                   output_dir=str(tmp_path / "runs"), log=lambda _: None, **QUICK)
    assert not (tmp_path / "runs").exists()


def test_a_dict_output_is_refused_even_with_a_loss_that_reads_it(tmp_path):
    """The metric and every trial read one tensor, so a loss that takes the dict cannot help:
    refused at the first training step, not after the dense reference was written."""
    def loss(output, targets):
        return nn.functional.cross_entropy(output["logits"], targets)

    with pytest.raises(ConfigError, match=r"^model 'python: .*DictNet': forward must return one "
                                          r"logits tensor .* got a dict with keys \['logits'\]"):
        run_search(model=DictNet, train=blobs(60), loss=loss, study="dict",
                   output_dir=str(tmp_path / "runs"), log=lambda _: None, **QUICK)
    assert not (tmp_path / "runs").exists()


def test_a_python_model_factory_that_raises_is_named(tmp_path):
    def make_model():
        raise RuntimeError("no weights here")

    with pytest.raises(ConfigError, match=r"^model factory 'python: .*make_model' raised "
                                          r"RuntimeError: no weights here$"):
        run_search(model=make_model, train=blobs(60), study="raises",
                   output_dir=str(tmp_path / "runs"), log=lambda _: None, **QUICK)
    assert not (tmp_path / "runs").exists()


# --- The rules themselves, on hand-made labels and outputs.

@pytest.mark.parametrize("labels, classes, expected", [
    (torch.tensor([0, 2, 1]), 3, None),
    (torch.tensor([0, -100, 2]), 3, None),                   # cross-entropy's ignore_index
    (torch.zeros(4, 5, dtype=torch.long), 3, None),          # a target per position (text)
    (torch.tensor([[0.2, 0.8], [1.0, 0.0]]), 2, None),       # class probabilities
    (torch.tensor([0, 3, 7, 1]), 3, "got 7 (2 of 4 labels out of range)"),
    (torch.tensor([0, -2, 1]), 3, "got -2 (1 of 3 labels out of range)"),
    (torch.tensor([0.0, 1.0]), 3, "got float32 labels (e.g. 0.0)"),
    (torch.tensor([True, False]), 2, "got bool labels (e.g. True)"),
])
def test_label_rules(labels, classes, expected):
    problem = label_problem(labels, classes)
    assert problem is None if expected is None else expected in problem, problem


def test_a_model_output_must_be_one_tensor():
    logits = torch.zeros(2, 3)
    assert check_output(logits) is logits
    with pytest.raises(ModelOutputError,
                       match=r"got a list of 1 \(Tensor\); .* \(e\.g\. out\[0\]\)"):
        check_output([logits])
    with pytest.raises(ModelOutputError, match=r"got a str; return that tensor itself or wrap"):
        check_output("logits")


def test_channel_pruning_of_a_model_torch_pruning_cannot_trace_is_one_line(tmp_path, capsys):
    """shufflenet's channel shuffle (a reshape torch-pruning 1.6 divides by zero on): refused
    before the dense reference trains, nothing left, instead of every channel trial failing."""
    config = {"study": "shuf", "output_dir": str(tmp_path / "runs"), "threads": 1,
              "model": "torchvision:shufflenet_v2_x0_5",
              "data": {"name": "synthetic", "options": {"samples": 64, "classes": 5, "size": 32}},
              "dense": {"epochs": 1}, "space": {"granularities": ["channel"]}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "study.yaml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "error: space.granularities: 'channel' needs torch-pruning to trace the channel "
        "dependencies of model 'torchvision:shufflenet_v2_x0_5', which failed (")
    assert "leave 'channel' out" in err[0] and not (tmp_path / "runs" / "shuf").exists()


def test_data_of_a_single_class_is_refused(tmp_path):
    """Every label 0: the head had one output, the loss was 0 and every trial scored 1.0."""
    x = torch.randn(60, 1, 6, 6)
    with pytest.raises(ConfigError, match=r"the data holds a single class \(num_classes 1, "
                                          r"inferred from the labels\): a classifier needs at "
                                          r"least 2"):
        run_search(model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 2)),
                   train=TensorDataset(x, torch.zeros(60, dtype=torch.long)), study="one",
                   output_dir=str(tmp_path), log=lambda _: None, threads=1)
    assert not (tmp_path / "one").exists()


def test_a_token_model_without_a_cast_is_told_how_to_read_the_probe(tmp_path):
    """An nn.Embedding fed the float probe: the error says to cast and clamp in forward (it
    told the user to rebuild the model for the input shape)."""
    x = torch.randint(0, 20, (60, 12))

    def embedder():
        return nn.Sequential(nn.Embedding(20, 8), nn.Flatten(), nn.Linear(96, 3))

    with pytest.raises(ConfigError, match=r"the probe feeds float zeros: a model of token ids "
                                          r"casts and clamps them in forward"):
        run_search(model=embedder, train=TensorDataset(x, x[:, 0] % 3), study="tok",
                   output_dir=str(tmp_path), log=lambda _: None, threads=1)


def test_top5_of_five_classes_or_fewer_is_refused(tmp_path):
    """Every prediction is among the top 5 of 3 classes: each trial scored 1.0."""
    x = torch.randn(60, 1, 6, 6)
    with pytest.raises(ConfigError, match=r"metric 'top5' needs more than 5 classes, the data "
                                          r"has 3"):
        run_search(model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 3)),
                   train=TensorDataset(x, torch.arange(60) % 3), metric="top5", study="top5",
                   output_dir=str(tmp_path), log=lambda _: None, threads=1)
    assert not (tmp_path / "top5").exists()


@pytest.mark.parametrize("kind", ["uint8 images", "float64 model"])
def test_inputs_or_weights_of_another_dtype_are_one_line_before_training(kind, tmp_path):
    """uint8 images into float weights failed inside the dense training (a traceback, the new
    study's folder left behind); a float64 model was told to fix its input shape."""
    x = torch.randint(0, 255, (60, 1, 6, 6), dtype=torch.uint8)
    y = torch.arange(60) % 3

    def net():
        model = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 3))
        return model.double() if kind == "float64 model" else model

    data = x.double() / 255 if kind == "float64 model" else x
    expected = (r"failed on two samples of the training data \(inputs uint8, shape \[1, 6, 6\]"
                r".*x\.float\(\) / 255" if kind == "uint8 images" else
                r"the search runs models in float32 .*model\.float\(\)")
    with pytest.raises(ConfigError, match=expected):
        run_search(model=net, train=TensorDataset(data, y), study="d", output_dir=str(tmp_path),
                   log=lambda _: None, threads=1)
    assert not (tmp_path / "d").exists()
