"""Writers of tiny data sets in the real on-disk formats torchvision reads (test helpers).

MNIST-style IDX files (optionally gzipped), CIFAR pickled batches, an ImageFolder tree of PNGs.
Images are random but reproducible; the functions return what they wrote so tests can compare.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def _idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist(root: Path, name: str = "MNIST", n_train: int = 60, n_test: int = 20,
                gz: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """``<root>/<name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` with 28x28 images."""
    gen = np.random.default_rng(seed)
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        for kind, payload in (("images-idx3", _idx_images(images)),
                              ("labels-idx1", _idx_labels(labels))):
            path = raw / f"{split}-{kind}-ubyte"
            if gz:
                with gzip.open(str(path) + ".gz", "wb") as handle:
                    handle.write(payload)
            else:
                path.write_bytes(payload)
        written[f"{split}_images"], written[f"{split}_labels"] = images, labels
    return written


def write_cifar10(root: Path, per_batch: int = 10, n_test: int = 20, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """``<root>/cifar-10-batches-py/`` with data_batch_1..5, test_batch and batches.meta."""
    gen = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, list] = {"train_rows": [], "train_labels": []}
    for i in range(1, 6):
        rows = gen.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(per_batch) + i) % 10]
        _pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5",
                                             "data": rows, "labels": labels})
        written["train_rows"].append(rows)
        written["train_labels"] += labels
    test_rows = gen.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_rows[0, :1024] = 255            # first test image: pure red
    test_rows[0, 1024:] = 0
    test_labels = [int(v) for v in np.arange(n_test) % 10]
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": test_rows,
                                    "labels": test_labels})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)],
                                      "num_cases_per_batch": per_batch, "num_vis": 3072})
    return {"train_rows": np.vstack(written["train_rows"]),
            "train_labels": np.asarray(written["train_labels"]),
            "test_rows": test_rows, "test_labels": np.asarray(test_labels)}


def write_cifar100(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> None:
    """``<root>/cifar-100-python/`` with train, test and meta (fine and coarse labels)."""
    gen = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        _pickle(folder / split, {"data": gen.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                                 "fine_labels": [int(v) for v in np.arange(n) % 100],
                                 "coarse_labels": [int(v) for v in np.arange(n) % 20]})
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": [f"coarse{i}" for i in range(20)]})


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def write_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"),
                       per_class: int = 6, size: tuple[int, int] = (12, 12), seed: int = 0,
                       mode: str = "RGB") -> Path:
    """``<root>/<class>/<i>.png``: each class a different mean colour plus noise."""
    from PIL import Image

    gen = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.full((*size[::-1], 3), 60 + 70 * c, dtype=np.int64)
            pixels = np.clip(base + gen.integers(-30, 30, size=base.shape), 0, 255)
            image = Image.fromarray(pixels.astype(np.uint8), "RGB").convert(mode)
            image.save(root / name / f"{i}.png")
    return root
