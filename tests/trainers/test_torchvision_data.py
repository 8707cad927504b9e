"""torchvision data sets read from files written in their real on-disk formats."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.disk_formats import (write_cifar10, write_cifar100, write_image_folder,
                                write_mnist)
from trainers.data import DATASETS, DataSettings, load_data
from trainers.errors import SetupError


def settings(name: str, root, **kw) -> DataSettings:
    return DataSettings(name=f"torchvision:{name}", root=str(root), **kw)


def rows(dataset: TensorDataset) -> set[bytes]:
    return {x.numpy().tobytes() for x in dataset.tensors[0]}


@pytest.mark.parametrize("name,gz", [("MNIST", False), ("FashionMNIST", True), ("KMNIST", True)])
def test_mnist_family_reads_idx_files_keeps_test_apart_and_carves_val(tmp_path, name, gz):
    written = write_mnist(tmp_path, name, n_train=60, n_test=20, gz=gz)
    bundle = load_data(settings(name, tmp_path, val_fraction=0.25))
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10
    assert len(bundle.train) == 45 and len(bundle.val) == 15 and len(bundle.test) == 20
    assert not rows(bundle.train) & rows(bundle.val)            # disjoint
    # The test split is the file's own, in order, normalised with the data set's statistics.
    x_test, y_test = bundle.test.tensors
    assert y_test.tolist() == written["t10k_labels"].tolist()
    mean, std = {"MNIST": (0.1307, 0.3081), "FashionMNIST": (0.2860, 0.3530),
                 "KMNIST": (0.1918, 0.3483)}[name]
    expected = (written["t10k_images"][3].astype(np.float32) / 255 - mean) / std
    assert np.allclose(x_test[3, 0].numpy(), expected, atol=1e-5)
    # Train + val together are exactly the training file.
    train_val = rows(bundle.train) | rows(bundle.val)
    assert len(train_val) == 60


def test_split_is_seeded(tmp_path):
    write_mnist(tmp_path)
    first = load_data(settings("MNIST", tmp_path, split_seed=1))
    again = load_data(settings("MNIST", tmp_path, split_seed=1))
    other = load_data(settings("MNIST", tmp_path, split_seed=2))
    assert rows(first.val) == rows(again.val)
    assert rows(first.val) != rows(other.val)
    # Stratified: every class of the training file appears in validation.
    assert len(set(first.val.tensors[1].tolist())) == 9 or len(first.val) < 10


def test_max_train_and_max_test_subsample(tmp_path):
    write_mnist(tmp_path, n_train=60, n_test=20)
    bundle = load_data(settings("MNIST", tmp_path, val_fraction=0.5,
                                options={"max_train": 20, "max_test": 8}))
    assert len(bundle.train) + len(bundle.val) == 20 and len(bundle.test) == 8


def test_missing_root_says_how_to_get_the_data_and_never_downloads(tmp_path):
    with pytest.raises(SetupError) as info:
        load_data(settings("MNIST", tmp_path / "nowhere"))
    message = str(info.value)
    assert "download: true" in message and "MNIST/raw/train-images-idx3-ubyte" in message
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(SetupError, match="data.root is required for torchvision:CIFAR10"):
        load_data(DataSettings(name="torchvision:CIFAR10"))
    with pytest.raises(SetupError, match="cifar-10-batches-py"):
        load_data(settings("CIFAR10", tmp_path))


def test_cifar10_reads_pickled_batches_channels_first(tmp_path):
    written = write_cifar10(tmp_path, per_batch=10, n_test=20)
    bundle = load_data(settings("CIFAR10", tmp_path, val_fraction=0.2))
    assert bundle.input_shape == (3, 32, 32) and bundle.num_classes == 10
    assert len(bundle.train) == 40 and len(bundle.val) == 10 and len(bundle.test) == 20
    x, y = bundle.test.tensors
    assert y.tolist() == written["test_labels"].tolist()
    mean = torch.tensor([0.4914, 0.4822, 0.4465])
    std = torch.tensor([0.2470, 0.2435, 0.2616])
    red = (torch.tensor([1.0, 0.0, 0.0]) - mean) / std        # first test image is pure red
    assert torch.allclose(x[0, :, 5, 7], red, atol=1e-5)
    # Pixel (row 2, col 3) of channel 1 of test image 1 sits at 1024 + 2 * 32 + 3 in the row.
    value = written["test_rows"][1, 1024 + 2 * 32 + 3] / 255
    assert abs(x[1, 1, 2, 3].item() - (value - 0.4822) / 0.2435) < 1e-5


def test_cifar100_uses_fine_labels(tmp_path):
    write_cifar100(tmp_path, n_train=40, n_test=20)
    bundle = load_data(settings("CIFAR100", tmp_path))
    assert bundle.num_classes == 100 and bundle.input_shape == (3, 32, 32)
    assert bundle.test.tensors[1].tolist() == list(range(20))


def test_image_folder_with_train_and_test_trees(tmp_path):
    write_image_folder(tmp_path / "train", per_class=6)
    write_image_folder(tmp_path / "test", per_class=2, seed=1)
    bundle = load_data(settings("ImageFolder", tmp_path, val_fraction=0.34))
    assert bundle.num_classes == 3 and bundle.input_shape == (3, 12, 12)
    assert len(bundle.test) == 6 and len(bundle.train) + len(bundle.val) == 18
    assert sorted(bundle.test[i][1] for i in range(6)) == [0, 0, 1, 1, 2, 2]


def test_image_folder_single_tree_carves_test_and_options_apply(tmp_path):
    write_image_folder(tmp_path, per_class=8, size=(20, 16))
    bundle = load_data(settings("ImageFolder", tmp_path, val_fraction=0.25, test_fraction=0.25,
                                options={"image_size": 8, "grayscale": True,
                                         "in_memory": True}))
    assert bundle.input_shape == (1, 8, 8)
    assert isinstance(bundle.train, TensorDataset)      # decoded once, fast path
    assert len(bundle.test) == 6 and len(bundle.val) == 6 and len(bundle.train) == 12
    assert set(bundle.test.tensors[1].tolist()) == {0, 1, 2}   # stratified


def test_image_folder_errors(tmp_path):
    with pytest.raises(SetupError, match="one sub-folder per class"):
        load_data(settings("ImageFolder", tmp_path / "empty"))
    write_image_folder(tmp_path / "a", classes=("x",), size=(8, 8))
    write_image_folder(tmp_path / "a", classes=("y",), size=(9, 9))
    with pytest.raises(SetupError, match="image_size"):
        load_data(settings("ImageFolder", tmp_path / "a", options={"in_memory": True}))
    with pytest.raises(SetupError, match=r"unknown key\(s\) \['size'\]"):
        load_data(settings("ImageFolder", tmp_path / "a", options={"size": 3}))


def test_registry_lists_every_torchvision_set():
    for name in ("MNIST", "FashionMNIST", "KMNIST", "CIFAR10", "CIFAR100", "ImageFolder"):
        assert f"torchvision:{name}" in DATASETS
