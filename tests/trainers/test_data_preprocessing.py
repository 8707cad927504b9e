"""Every data set records how a raw input becomes what the model reads (exports carry it): applying
the recorded recipe to the raw data must give exactly the tensors the trainers saw."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from tests.disk_formats import write_cifar10, write_image_folder, write_mnist
from trainers.data import DataSettings, load_data
from trainers.data.builtin import split_indices
from trainers.data.splits import bundle_from_splits
from trainers.data.user import bundle_from_user_value
from trainers.errors import SetupError


def apply(recipe: dict, raw: np.ndarray) -> np.ndarray:
    """``x = (raw / divide_by - mean) / std`` per channel, channels first: the recorded formula."""
    mean = np.asarray(recipe["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(recipe["std"], dtype=np.float32).reshape(-1, 1, 1)
    return (raw.astype(np.float32) / np.float32(recipe["divide_by"]) - mean) / std


def test_digits_record_the_scaling_to_minus_one_one():
    from sklearn.datasets import load_digits

    settings = DataSettings()
    bundle = load_data(settings)
    recipe = bundle.preprocessing
    assert recipe["known"] is True and recipe["range"] == [-1.0, 1.0]
    assert "digits scaled to [-1, 1]: x = (pixel / 16 - 0.5) / 0.5" in recipe["description"]
    digits = load_digits()
    expected = apply(recipe, digits.images[:, None])
    train, _, _ = split_indices(len(expected), settings, digits.target)
    assert np.array_equal(bundle.train.tensors[0].numpy(), expected[train])
    # scikit-learn's own 0..1 scaling (data / 16) is not what the model reads
    assert expected.min() == -1.0 and expected.max() == 1.0
    assert not np.allclose(bundle.train.tensors[0].numpy(), digits.images[train][:, None] / 16)


def test_synthetic_says_it_is_used_as_generated():
    bundle = load_data(DataSettings(name="synthetic", options={"samples": 40}))
    assert bundle.preprocessing["known"] is True
    assert bundle.preprocessing["description"].startswith("synthetic inputs, used as generated")


def test_mnist_recipe_reproduces_the_tensors_from_the_raw_file(tmp_path):
    written = write_mnist(tmp_path, n_train=20, n_test=10)
    bundle = load_data(DataSettings(name="torchvision:MNIST", root=str(tmp_path),
                                    options={"mean": 0.5, "std": 0.25}))
    recipe = bundle.preprocessing
    assert recipe["mean"] == [0.5] and recipe["std"] == [0.25] and recipe["divide_by"] == 255
    assert "x = (pixel / 255 - mean) / std" in recipe["description"]
    expected = apply(recipe, written["t10k_images"][:, None])
    assert np.allclose(bundle.test.tensors[0].numpy(), expected, atol=1e-6)


def test_cifar_recipe_reproduces_the_tensors_channels_first(tmp_path):
    written = write_cifar10(tmp_path, per_batch=4, n_test=6)
    bundle = load_data(DataSettings(name="torchvision:CIFAR10", root=str(tmp_path)))
    recipe = bundle.preprocessing
    assert recipe["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    expected = apply(recipe, written["test_rows"].reshape(-1, 3, 32, 32))
    assert np.allclose(bundle.test.tensors[0].numpy(), expected, atol=1e-5)


def test_image_folder_names_its_transform_steps(tmp_path):
    write_image_folder(tmp_path)
    bundle = load_data(DataSettings(name="torchvision:ImageFolder", root=str(tmp_path),
                                    options={"image_size": 8, "grayscale": True}))
    recipe = bundle.preprocessing
    assert "Resize, CenterCrop, Grayscale, ToTensor, Normalize" in recipe["description"]
    assert "Resize(size=8" in recipe["torchvision_transform"] and recipe["mean"] == [0.5]


def test_user_data_records_what_the_user_declares_or_says_unknown():
    data = TensorDataset(torch.randn(20, 3), torch.arange(20) % 2)
    settings = DataSettings(name="mine:load")
    declared = bundle_from_user_value({"train": data, "preprocessing": "z-scored features"},
                                      settings, "mine:load")
    assert declared.preprocessing == {"known": True, "description": "z-scored features",
                                      "declared_by": "user"}
    silent = bundle_from_splits(data)
    assert silent.preprocessing["known"] is False
    assert silent.preprocessing["description"].startswith("unknown: the data came from user code")
    with pytest.raises(SetupError, match="preprocessing must be a string or a mapping"):
        bundle_from_splits(data, preprocessing={"mean": 0})
