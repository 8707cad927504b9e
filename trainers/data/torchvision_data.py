"""torchvision data sets read from the user's disk: MNIST, FashionMNIST, KMNIST, CIFAR10, CIFAR100,
ImageFolder.

Files are parsed by torchvision's own classes (the code path a user with the real data hits);
nothing is downloaded unless ``download: true``. The data set's own test split is kept apart for
reporting and the validation split is carved from its training split (``val_fraction`` of it,
seeded by ``split_seed``). MNIST- and CIFAR-style sets are small enough to hold as normalised
tensors in memory (the training loop's fast path, no per-sample decoding); ImageFolder trees are
decoded lazily unless ``options.in_memory`` is true; a tree with ``train/`` and ``test/`` (or
``val/``) sub-folders keeps that test split, a single tree has ``test_fraction`` carved off and
``val_fraction`` (of the whole) for validation, like the built-in sets.

``options``: ``max_train`` / ``max_test`` (seeded subsample for quick runs), ``mean`` / ``std``
(per-channel normalisation); ImageFolder also ``image_size`` (resize + centre crop),
``grayscale`` and ``in_memory``.
"""
from __future__ import annotations

import gzip
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from trainers.checkpoint import atomic_write
from trainers.data.bundle import DataBundle, scaled_preprocessing
from trainers.data.settings import TORCHVISION_PREFIX as PREFIX, DataSettings
from trainers.data.splits import carve, cheap_labels
from trainers.errors import SetupError

# name -> (mean, std) per channel of the training split (the usual published values)
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "MNIST": ((0.1307,), (0.3081,)),
    "FashionMNIST": ((0.2860,), (0.3530,)),
    "KMNIST": ((0.1918,), (0.3483,)),
    "CIFAR10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "CIFAR100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "ImageFolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),   # ImageNet's
}
COMMON_OPTIONS = {"max_train", "max_test", "mean", "std"}
FOLDER_OPTIONS = COMMON_OPTIONS | {"image_size", "grayscale", "in_memory"}


def check_options(name: str, options: dict[str, Any], valid: set[str]) -> None:
    unknown = sorted(set(options) - valid)
    if unknown:
        raise SetupError(f"data.options for {PREFIX}{name}: unknown key(s) {unknown}; "
                         f"valid keys: {sorted(valid)}")


def require_root(settings: DataSettings, name: str, expected: str) -> Path:
    if not settings.root:
        raise SetupError(f"data.root is required for {PREFIX}{name}: the folder that holds "
                         f"{expected} (or receives it with `download: true`)")
    return Path(settings.root).expanduser()


def missing_message(name: str, root: Path, expected: str, *, can_download: bool = True) -> str:
    how = (f"set `download: true` in the data section to let torchvision fetch it into "
           f"'{root}', or copy the files there" if can_download
           else "arrange your images as one sub-folder per class")
    return f"data.root '{root}' has no {name} data (expected {expected}); {how}"


def normalise(images: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    channels = images.shape[1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    if mean_t.shape[0] not in (1, channels) or std_t.shape[0] not in (1, channels):
        raise SetupError(f"data.options mean/std need 1 or {channels} values, "
                         f"got {list(mean_t.flatten().tolist())} / {list(std_t.flatten().tolist())}")
    return (images.to(torch.float32) / 255.0 - mean_t) / std_t


def limit(dataset: Dataset, count: Any, seed: int, key: str) -> Dataset:
    """A seeded subsample of ``count`` samples (``None``: all of them)."""
    if count is None or int(count) >= len(dataset):
        return dataset
    if int(count) < 2:
        raise SetupError(f"data.options.{key} must be >= 2, got {count}")
    _, kept = carve(dataset, int(count) / len(dataset), seed)
    return kept


def tensors_bundle(name: str, train: TensorDataset, test: TensorDataset, classes: int,
                   settings: DataSettings, preprocessing: dict) -> DataBundle:
    opts = settings.options
    train = limit(train, opts.get("max_train"), settings.split_seed, "max_train")
    test = limit(test, opts.get("max_test"), settings.split_seed, "max_test")
    train, val = carve(train, settings.val_fraction, settings.split_seed)
    return DataBundle(train, val, test, classes, tuple(train.tensors[0].shape[1:]), PREFIX + name,
                      preprocessing)


def pixel_recipe(name: str, mean: Any, std: Any, layout: str) -> dict:
    """The recipe ``normalise`` applies to the uint8 images of ``name``."""
    mean, std = (list(np.atleast_1d(np.asarray(v, dtype=float))) for v in (mean, std))
    return scaled_preprocessing(
        f"{PREFIX}{name} images: x = (pixel / 255 - mean) / std per channel with mean {mean}, "
        f"std {std}; pixels are uint8 0..255, {layout}", f"uint8 pixels 0..255, {layout}",
        255.0, mean, std)


# --- MNIST family: IDX files under <root>/<Name>/raw -----------------------------------------

def unpack_gzipped(raw: Path) -> None:
    """torchvision reads the unpacked IDX files; unpack ``*.gz`` copies a user dropped in."""
    if not raw.is_dir():
        return
    for packed in raw.glob("*-ubyte.gz"):
        target = packed.with_suffix("")
        if not target.exists():   # atomic: a kill mid-unpack must not leave a truncated file
            atomic_write(target, partial(_gunzip, packed))


def _gunzip(packed: Path, tmp: str) -> None:
    with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)


def load_mnist_family(name: str, settings: DataSettings) -> DataBundle:
    import torchvision.datasets as tvd

    check_options(name, settings.options, COMMON_OPTIONS)
    expected = (f"<root>/{name}/raw/train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
    root = require_root(settings, name, f"{name}/raw/*-ubyte")
    unpack_gzipped(root / name / "raw")
    cls = getattr(tvd, name)
    train_set, test_set = open_splits(cls, root, name, expected, settings)
    mean, std = (settings.options.get(k, v) for k, v in zip(("mean", "std"), STATS[name]))

    def to_tensors(dataset: Any) -> TensorDataset:
        return TensorDataset(normalise(dataset.data[:, None], mean, std),
                             torch.as_tensor(dataset.targets, dtype=torch.long))

    return tensors_bundle(name, to_tensors(train_set), to_tensors(test_set),
                          len(train_set.classes), settings,
                          pixel_recipe(name, mean, std, "one channel, shape (1, 28, 28)"))


def open_splits(cls: type, root: Path, name: str, expected: str, settings: DataSettings
                ) -> tuple[Any, Any]:
    """The data set's own train and test splits; missing files are one clear ``SetupError``."""
    try:
        return (cls(str(root), train=True, download=settings.download),
                cls(str(root), train=False, download=settings.download))
    except RuntimeError as exc:
        raise SetupError(missing_message(name, root, expected)) from exc


# --- CIFAR: pickled batches under <root>/cifar-10-batches-py | cifar-100-python ----------------

def _files_only(cls: type) -> type:
    """``cls`` checking that its files exist instead of their MD5 (torchvision still verifies the
    archive's MD5 when it downloads it); real files pass either way, and so do test fixtures."""
    return type(f"{cls.__name__}Files", (cls,), {
        "train_list": [[name, None] for name, _ in cls.train_list],
        "test_list": [[name, None] for name, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    })


def load_cifar(name: str, settings: DataSettings) -> DataBundle:
    import torchvision.datasets as tvd

    check_options(name, settings.options, COMMON_OPTIONS)
    cls = _files_only(getattr(tvd, name))
    files = [n for n, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    expected = f"<root>/{cls.base_folder}/ with {', '.join(files)}"
    root = require_root(settings, name, f"{cls.base_folder}/")
    train_set, test_set = open_splits(cls, root, name, expected, settings)
    mean, std = (settings.options.get(k, v) for k, v in zip(("mean", "std"), STATS[name]))

    def to_tensors(dataset: Any) -> TensorDataset:
        images = torch.as_tensor(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2)
        return TensorDataset(normalise(images, mean, std),
                             torch.as_tensor(dataset.targets, dtype=torch.long))

    return tensors_bundle(name, to_tensors(train_set), to_tensors(test_set),
                          len(train_set.classes), settings,
                          pixel_recipe(name, mean, std, "RGB, channels first (3, 32, 32)"))


# --- ImageFolder: <root>/<class>/<image> or <root>/train|test/<class>/<image> ------------------

def load_image_folder(settings: DataSettings) -> DataBundle:
    import torchvision.datasets as tvd
    from torchvision import transforms

    name = "ImageFolder"
    opts = settings.options
    check_options(name, opts, FOLDER_OPTIONS)
    expected = "<root>/<class>/<image> or <root>/train/<class>/<image> plus <root>/test/..."
    root = require_root(settings, name, "one sub-folder of images per class")
    if settings.download:
        raise SetupError(f"{PREFIX}ImageFolder cannot be downloaded; set `download: false` and "
                         f"put the images under data.root")
    grayscale = bool(opts.get("grayscale", False))
    default_mean, default_std = ((0.5,), (0.5,)) if grayscale else STATS[name]
    steps: list[Any] = []
    if opts.get("image_size"):
        steps += [transforms.Resize(int(opts["image_size"])),
                  transforms.CenterCrop(int(opts["image_size"]))]
    if grayscale:
        steps.append(transforms.Grayscale(1))
    steps += [transforms.ToTensor(),
              transforms.Normalize(opts.get("mean", default_mean), opts.get("std", default_std))]
    transform = transforms.Compose(steps)
    names = ", ".join(type(step).__name__ for step in steps)
    recipe = {**pixel_recipe(name, opts.get("mean", default_mean), opts.get("std", default_std),
                             f"images decoded by PIL, then {names}"),
              "torchvision_transform": repr(transform)}
    val_share = settings.val_fraction         # of the training tree
    held_out = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    try:
        if (root / "train").is_dir() and held_out is not None:
            train: Dataset = tvd.ImageFolder(str(root / "train"), transform=transform)
            test: Dataset = tvd.ImageFolder(str(held_out), transform=transform)
            if test.classes != train.classes:
                raise SetupError(f"ImageFolder '{held_out}' has classes {test.classes}, but "
                                 f"'{root / 'train'}' has {train.classes}; they must match")
        else:
            whole = tvd.ImageFolder(str(root), transform=transform)
            train, test = carve(whole, settings.test_fraction, settings.split_seed)
            val_share = settings.val_fraction / (1.0 - settings.test_fraction)   # of the whole
    except (FileNotFoundError, RuntimeError) as exc:
        raise SetupError(missing_message(name, root, expected, can_download=False)
                         + f" ({exc})") from exc
    classes = len(_base(train).classes)
    if opts.get("in_memory"):
        train, test = materialise(train), materialise(test)
    train = limit(train, opts.get("max_train"), settings.split_seed, "max_train")
    test = limit(test, opts.get("max_test"), settings.split_seed, "max_test")
    train, val = carve(train, val_share, settings.split_seed)
    shape = tuple(train[0][0].shape)
    return DataBundle(train, val, test, classes, shape, PREFIX + name, recipe)


def _base(dataset: Dataset) -> Any:
    while hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return dataset


def materialise(dataset: Dataset) -> TensorDataset:
    """Decode every sample once into a ``TensorDataset`` (all images must share one size)."""
    labels = cheap_labels(dataset)
    xs = [dataset[i][0] for i in range(len(dataset))]
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise SetupError(f"ImageFolder images have different sizes {sorted(shapes)[:4]}; set "
                         f"data.options.image_size to resize them")
    ys = labels if labels is not None else [dataset[i][1] for i in range(len(dataset))]
    return TensorDataset(torch.stack(xs), torch.as_tensor(np.asarray(ys), dtype=torch.long))
