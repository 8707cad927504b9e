"""Bundles from a user's Datasets / DataLoaders: carving, inference, loader rebuilding."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from trainers.data import DataSettings, bundle_from_splits
from trainers.data.user import bundle_from_user_value
from trainers.errors import SetupError
from trainers.training import iterate_batches


def tensors(n: int = 100, classes: int = 4) -> TensorDataset:
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    return TensorDataset(x, torch.arange(n) % classes)


class PlainDataset(Dataset):
    """No ``targets`` attribute: labels must be read sample by sample."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.full((3, 4, 4), float(i)), i % 5


def ids(split) -> set[int]:
    data = split.dataset if isinstance(split, DataLoader) else split
    return {int(data[i][0].flatten()[0]) for i in range(len(data))}


def test_missing_test_then_val_are_carved_disjoint_and_seeded():
    bundle = bundle_from_splits(tensors(100), val_fraction=0.2, test_fraction=0.25, seed=3)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (55, 20, 25)
    assert isinstance(bundle.train, TensorDataset)     # fast path kept
    parts = [ids(bundle.train), ids(bundle.val), ids(bundle.test)]
    assert set().union(*parts) == set(range(100)) and sum(map(len, parts)) == 100
    assert bundle.num_classes == 4 and bundle.input_shape == (1, 2, 2)
    again = bundle_from_splits(tensors(100), val_fraction=0.2, test_fraction=0.25, seed=3)
    assert ids(again.val) == parts[1]
    # Stratified: 5 of each class in the validation split.
    assert torch.bincount(bundle.val.tensors[1]).tolist() == [5, 5, 5, 5]


def test_given_test_is_kept_and_val_is_a_share_of_train():
    bundle = bundle_from_splits(tensors(80), test=tensors(10), val_fraction=0.25)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (60, 20, 10)


def test_plain_dataset_scans_labels_and_becomes_subsets():
    bundle = bundle_from_splits(PlainDataset(50), test=PlainDataset(10), val_fraction=0.2)
    assert isinstance(bundle.train, Subset) and bundle.num_classes == 5
    assert bundle.input_shape == (3, 4, 4)


def test_dataloaders_are_rebuilt_with_their_settings_and_iterated_as_given():
    loader = DataLoader(tensors(60), batch_size=7, shuffle=True)
    bundle = bundle_from_splits(loader, test=DataLoader(tensors(12), batch_size=5))
    assert isinstance(bundle.train, DataLoader) and bundle.train.batch_size == 7
    assert isinstance(bundle.val, DataLoader)
    assert ids(bundle.train).isdisjoint(ids(bundle.val))
    sizes = [len(x) for x, _ in iterate_batches(bundle.test, 999, torch.device("cpu"),
                                                shuffle=False)]
    assert sizes == [5, 5, 2]                            # the loader's batch size, not 999


def test_bad_inputs_are_clear():
    with pytest.raises(SetupError, match="train must be a torch Dataset or DataLoader, got list"):
        bundle_from_splits([1, 2, 3])
    with pytest.raises(SetupError, match="mapping with keys \\['tests', 'train'\\]"):
        bundle_from_user_value({"train": tensors(), "tests": tensors()}, DataSettings(), "m:f")
    with pytest.raises(SetupError, match="must return a DataBundle"):
        bundle_from_user_value(42, DataSettings(), "m:f")


def test_user_value_forms():
    settings = DataSettings(val_fraction=0.2, test_fraction=0.2)
    three = bundle_from_user_value((tensors(40), tensors(10), tensors(10)), settings, "m:f")
    assert (len(three.train), len(three.val), len(three.test)) == (40, 10, 10)
    two = bundle_from_user_value((tensors(40), tensors(10)), settings, "m:f")
    assert len(two.test) == 10 and len(two.train) + len(two.val) == 40
    mapping = bundle_from_user_value({"train": tensors(50), "num_classes": 7}, settings, "m:f")
    assert mapping.num_classes == 7 and len(mapping.test) == 10 and mapping.name == "m:f"


def test_prediction_count_is_samples_times_targets_per_sample():
    from trainers.data import prediction_count

    assert prediction_count(tensors(30)) == 30                         # one label each
    assert prediction_count(DataLoader(tensors(30), batch_size=8)) == 30
    windows = TensorDataset(torch.zeros(5, 8, dtype=torch.long), torch.zeros(5, 8,
                                                                             dtype=torch.long))
    assert prediction_count(windows) == 40                             # every position of a window
    assert prediction_count(PlainDataset(7)) == 7
    assert prediction_count(tensors(0)) == 0


def _sample_ids(split) -> list[int]:
    """The samples of ``split`` in the order it yields them (each sample's value is its id)."""
    return [int(v) for x, _ in iterate_batches(split, 7, torch.device("cpu"), shuffle=False)
            for v in x.reshape(len(x), -1)[:, 0]]


@pytest.mark.parametrize("kind", ["tensors", "dataset", "loader"])
def test_a_calibration_subset_is_a_fixed_random_draw_in_the_split_order(kind):
    from trainers.data.splits import calibration_subset

    split = {"tensors": tensors(100), "dataset": PlainDataset(100),
             "loader": DataLoader(PlainDataset(100), batch_size=8, shuffle=True,
                                  drop_last=True)}[kind]
    subset = calibration_subset(split, 30)
    ids = _sample_ids(subset)
    assert len(ids) == 30 and len(set(ids)) == 30 and ids == sorted(ids)   # drop_last undone
    assert ids != list(range(30))                      # not the first 30: a class-sorted split
    assert ids == _sample_ids(calibration_subset(split, 30))   # the same draw every time
    expected = {"tensors": TensorDataset, "dataset": Subset, "loader": DataLoader}[kind]
    assert type(subset) is expected                    # a tensor split stays one (fast path)
    for whole in (None, 100, 500):                     # nothing to cut: the split itself
        assert calibration_subset(split, whole) is split


def test_a_split_that_cannot_be_indexed_is_measured_whole():
    from torch.utils.data import IterableDataset

    from trainers.data.splits import calibration_subset

    class Stream(IterableDataset):
        def __iter__(self):
            return iter([(torch.zeros(2), 0)] * 50)

    stream = Stream()
    assert calibration_subset(stream, 10) is stream
