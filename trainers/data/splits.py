"""Turn whatever splits a user has (Datasets or DataLoaders, with or without validation and test
parts) into a ``DataBundle``: seeded carving of missing splits, shape and class-count inference.

In-memory ``TensorDataset``s stay ``TensorDataset``s when carved (the training loop's fast path);
other data sets become ``Subset``s; a ``DataLoader`` keeps its batch size, workers and collate
function, rebuilt over the carved part.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, TensorDataset

from trainers.data.bundle import DataBundle, declared_preprocessing
from trainers.errors import SetupError

Split = Dataset | DataLoader


def cheap_labels(data: Split) -> np.ndarray | None:
    """All labels of a split without reading its inputs, when the data set keeps them apart."""
    if isinstance(data, DataLoader):
        return cheap_labels(data.dataset)
    if isinstance(data, TensorDataset) and len(data.tensors) >= 2:
        return data.tensors[1].detach().cpu().numpy()
    if isinstance(data, Subset):
        inner = cheap_labels(data.dataset)
        return None if inner is None else inner[np.asarray(data.indices)]
    targets = getattr(data, "targets", None)
    if targets is None or isinstance(targets, (str, bytes)):
        return None
    try:
        labels = np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets)
    except Exception:
        return None
    return labels if labels.ndim == 1 and len(labels) == len(data) else None


def scan_labels(data: Split) -> np.ndarray:
    """Every label of a split, reading it once (used only when no cheaper way exists)."""
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
    found = [torch.as_tensor(batch[1]).reshape(-1) for batch in loader]
    return torch.cat(found).cpu().numpy() if found else np.zeros(0, dtype=np.int64)


def infer_input_shape(data: Split) -> tuple[int, ...]:
    """The shape of one input sample (no batch dimension)."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if len(dataset) == 0:
        raise SetupError("the training data is empty")
    sample = dataset[0]
    if not isinstance(sample, (tuple, list)) or len(sample) < 2:
        raise SetupError(f"each sample must be an (input, label) pair, got {type(sample).__name__}")
    return tuple(torch.as_tensor(sample[0]).shape)


def prediction_count(data: Split) -> int | None:
    """How many predictions a metric over this split averages: samples x targets per sample (1
    for a class label; the positions of a text window). ``None`` when the split has no length.

    Reads one sample's target only, so a large image set costs one image.
    """
    dataset = data.dataset if isinstance(data, DataLoader) else data
    try:
        size = len(dataset)
        return size * (torch.as_tensor(dataset[0][1]).numel() if size else 1)
    except (TypeError, NotImplementedError, IndexError):
        return None


def infer_num_classes(*splits: Split) -> int:
    """Number of classes: ``classes`` attribute, else the largest label + 1 over the splits."""
    for split in splits:
        dataset = split.dataset if isinstance(split, DataLoader) else split
        while isinstance(dataset, Subset):
            dataset = dataset.dataset
        classes = getattr(dataset, "classes", None)
        if isinstance(classes, (list, tuple)) and classes:
            return len(classes)
    largest = -1
    for split in splits:
        labels = cheap_labels(split)
        if labels is None:
            labels = scan_labels(split)
        if labels.size:
            largest = max(largest, int(labels.max()))
    if largest < 0:
        raise SetupError("cannot infer the number of classes: the data has no labels")
    return largest + 1


def split_positions(n: int, fraction: float, seed: int, labels: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified when every class has >= 2 samples) split of ``range(n)``:
    ``(kept, carved)`` with ``round(fraction * n)`` carved positions (at least 1)."""
    from sklearn.model_selection import train_test_split

    if n < 2:
        raise SetupError(f"cannot carve a split from a data set of {n} sample(s)")
    size = min(max(1, int(round(fraction * n))), n - 1)
    stratify = None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and len(counts) <= size and len(counts) <= n - size:
            stratify = labels
    kept, carved = train_test_split(np.arange(n), test_size=size, random_state=seed,
                                    stratify=stratify)
    return np.sort(kept), np.sort(carved)


def subset(data: Dataset, positions: np.ndarray) -> Dataset:
    """Rows ``positions`` of ``data``; tensors stay tensors."""
    if isinstance(data, TensorDataset):
        index = torch.as_tensor(positions, dtype=torch.long)
        return TensorDataset(*(t[index] for t in data.tensors))
    return Subset(data, positions.tolist())


def carve(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``data`` into ``(rest, carved)`` with ``fraction`` of it carved, seeded."""
    dataset = data.dataset if isinstance(data, DataLoader) else data
    kept, carved = split_positions(len(dataset), fraction, seed, cheap_labels(dataset))
    rest, part = subset(dataset, kept), subset(dataset, carved)
    if isinstance(data, DataLoader):
        return (rebuild_loader(data, rest, shuffle=None),
                rebuild_loader(data, part, shuffle=False, drop_last=False))
    return rest, part


def rebuild_loader(loader: DataLoader, dataset: Dataset, *, shuffle: bool | None,
                   drop_last: bool | None = None) -> DataLoader:
    """A loader like ``loader`` over ``dataset`` (``shuffle=None``: shuffle as ``loader`` did;
    ``drop_last=None``: as ``loader``; an evaluation split keeps every sample: ``False``)."""
    if shuffle is None:
        shuffle = isinstance(loader.sampler, RandomSampler)
    if loader.batch_size is None:
        raise SetupError("a DataLoader with a custom batch_sampler cannot be split; pass "
                         "train, val and test explicitly")
    options: dict[str, Any] = dict(
        batch_size=loader.batch_size, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
        drop_last=loader.drop_last if drop_last is None else drop_last)
    if loader.num_workers > 0:
        options.update(persistent_workers=loader.persistent_workers,
                       worker_init_fn=loader.worker_init_fn)
    return DataLoader(dataset, shuffle=shuffle, **options)


def inner_dataset(split: Split) -> Any:
    """The data set of a split: a ``DataLoader``'s, or the split itself (what names it)."""
    return split.dataset if isinstance(split, DataLoader) else split


def _length(split: Split) -> int | None:
    dataset = split.dataset if isinstance(split, DataLoader) else split
    try:
        return len(dataset)
    except TypeError:        # an iterable data set: no length to check
        return None


def bundle_from_splits(train: Split, val: Split | None = None, test: Split | None = None, *,
                       val_fraction: float = 0.15, test_fraction: float = 0.2, seed: int = 0,
                       num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
                       name: str = "", preprocessing: Any = None) -> DataBundle:
    """A bundle from the user's splits; a missing test split, then a missing validation split,
    is carved from ``train`` (seeded; ``*_fraction`` of the data given as ``train``).
    ``preprocessing``: what the user declares about how inputs were made (a sentence or a mapping
    with ``description``); recorded as ``unknown`` when not given."""
    for label, split in (("train", train), ("val", val), ("test", test)):
        if split is not None and not isinstance(split, (Dataset, DataLoader)):
            raise SetupError(f"{label} must be a torch Dataset or DataLoader, "
                             f"got {type(split).__name__}")
    share_left, val_given, test_given = 1.0, val is not None, test is not None
    if test is None:
        train, test = carve(train, test_fraction, seed)
        share_left -= test_fraction
    if val is None:
        train, val = carve(train, val_fraction / share_left, seed + 1)
    for label, split, given in (("train", train, True), ("val", val, val_given),
                                ("test", test, test_given)):
        if _length(split) == 0:   # the dense reference trained, then a metric had nothing
            how = ("give it samples, or leave it out and it is carved from train" if given else
                   "carved from too little training data")
            raise SetupError(f"the {label} split is empty ({how})")
    shape = tuple(input_shape) if input_shape else infer_input_shape(train)
    classes = num_classes if num_classes else infer_num_classes(train, val, test)
    if classes < 2 and not num_classes:   # every label 0: one output, loss 0, accuracy 1.0
        raise SetupError(f"the data holds a single class (num_classes {classes}, inferred from "
                         f"the labels): a classifier needs at least 2 (give num_classes when "
                         f"these splits lack the other classes)")
    return DataBundle(train, val, test, int(classes), shape, name,
                      declared_preprocessing(preprocessing))


CALIBRATION_SEED = 0   # the same subset for every candidate (and every study of one split)


def calibration_subset(split: Split, samples: int | None) -> Split:
    """``samples`` samples of ``split``, drawn once at random (a fixed seed) and kept in the
    split's order; the split itself when it has no more than that, when ``samples`` is None, or
    when it cannot be indexed (an iterable data set, a loader with its own batch sampler).

    A random draw, not the first ``samples``: a split stored by class (an image folder) would
    otherwise be measured on its first classes only.
    """
    loader = split if isinstance(split, DataLoader) else None
    dataset, size = inner_dataset(split), _length(split)
    if samples is None or size is None or size <= samples \
            or (loader is not None and loader.batch_size is None):
        return split
    generator = torch.Generator().manual_seed(CALIBRATION_SEED)
    indices = torch.randperm(size, generator=generator)[:samples].sort().values
    if loader is None and isinstance(dataset, TensorDataset):   # stays a tensor data set
        return TensorDataset(*(tensor[indices] for tensor in dataset.tensors))
    subset = Subset(dataset, indices.tolist())
    return subset if loader is None else rebuild_loader(loader, subset, shuffle=False,
                                                        drop_last=False)
