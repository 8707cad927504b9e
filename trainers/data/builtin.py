"""The embedded data sets: scikit-learn's digits (real, offline) and a synthetic one for fast tests."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from trainers.data.bundle import DataBundle, scaled_preprocessing
from trainers.data.settings import DataSettings
from trainers.errors import SetupError


def split_indices(n: int, settings: DataSettings, labels: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, stratified (when labels are given) train / val / test index split."""
    from sklearn.model_selection import train_test_split

    index = np.arange(n)
    field, fraction = "data.test_fraction", settings.test_fraction
    try:
        rest, test = train_test_split(index, test_size=fraction,
                                      random_state=settings.split_seed, stratify=labels)
        field, fraction = "data.val_fraction", settings.val_fraction
        val_share = settings.val_fraction / (1.0 - settings.test_fraction)
        train, val = train_test_split(rest, test_size=val_share, random_state=settings.split_seed,
                                      stratify=None if labels is None else labels[rest])
    except ValueError as exc:   # too few samples for a stratified split (one per class at least)
        raise SetupError(f"{field} {fraction} of {n} samples is too small a split: "
                         f"{exc}") from exc
    return train, val, test


def bundle_from_arrays(x: np.ndarray, y: np.ndarray, settings: DataSettings, num_classes: int,
                       name: str, preprocessing: dict) -> DataBundle:
    """Split in-memory arrays into a bundle of TensorDatasets (fast path in the training loop)."""
    train, val, test = split_indices(len(x), settings, y)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)

    def part(idx: np.ndarray) -> TensorDataset:
        idx_t = torch.as_tensor(idx)
        return TensorDataset(xt[idx_t], yt[idx_t])

    return DataBundle(part(train), part(val), part(test), num_classes, tuple(xt.shape[1:]), name,
                      preprocessing)


def load_digits_bundle(settings: DataSettings) -> DataBundle:
    """scikit-learn's digits: 1,797 real 8x8 handwritten digits shipped with the package."""
    from sklearn.datasets import load_digits

    check_options("digits", settings.options, ())
    digits = load_digits()
    recipe = scaled_preprocessing(
        "digits scaled to [-1, 1]: x = (pixel / 16 - 0.5) / 0.5, from scikit-learn's "
        "load_digits().images (8x8 pixels valued 0..16), shape (1, 8, 8)",
        "sklearn.datasets.load_digits().images, pixel values 0..16", 16.0, [0.5], [0.5],
        range=[-1.0, 1.0])
    x = digits.images.astype(np.float32) / recipe["divide_by"]
    x = (x - recipe["mean"][0]) / recipe["std"][0]
    return bundle_from_arrays(x[:, None, :, :], digits.target, settings, 10, "digits", recipe)


def load_synthetic_bundle(settings: DataSettings) -> DataBundle:
    """Class-dependent 8x8 patterns plus noise: learnable in a few epochs, for fast tests."""
    opts = settings.options
    check_options("synthetic", opts, ("samples", "classes", "size", "seed"))
    n = int(opts.get("samples", 600))
    classes = int(opts.get("classes", 4))
    size = int(opts.get("size", 8))
    if classes < 2 or n < 2 * classes or size < 1:
        raise SetupError(f"data.options of 'synthetic' need classes >= 2, samples >= 2 x classes "
                         f"and size >= 1, got classes {classes}, samples {n}, size {size}")
    gen = np.random.default_rng(int(opts.get("seed", 0)))
    prototypes = gen.normal(size=(classes, 1, size, size)).astype(np.float32)
    y = np.arange(n) % classes
    x = prototypes[y] + 0.8 * gen.normal(size=(n, 1, size, size)).astype(np.float32)
    made = {"known": True, "description": "synthetic inputs, used as generated (no preprocessing): "
            "class prototypes plus Gaussian noise (data.options seed, samples, classes, size)"}
    return bundle_from_arrays(x, y, settings, classes, "synthetic", made)


def check_options(name: str, options: dict, known: tuple[str, ...]) -> None:
    """Refuse ``data.options`` a built-in data set does not read (a typo would be ignored)."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SetupError(f"data.options {unknown} are not options of data set '{name}' "
                         f"(it takes {list(known) or 'none'})")
