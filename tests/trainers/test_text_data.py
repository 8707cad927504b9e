"""The pydoc_text data set: a fixed split by topic, windows of next-character targets, offline."""
from __future__ import annotations

import pytest
import torch

from trainers.data import DataSettings, load_data
from trainers.data.text import (SYMBOLS, UNKNOWN, VOCAB_SIZE, decode, encode, topic_split,
                                topics, windows)
from trainers.errors import SetupError


def test_split_is_by_topic_fixed_and_sized():
    split = topic_split()
    names = [set(split[part]) for part in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    texts = topics()
    assert set().union(*names) == set(texts) and len(texts) >= 70
    total = sum(len(t) for t in texts.values())
    share = {part: sum(len(texts[n]) for n in split[part]) / total for part in split}
    assert 0.10 <= share["test"] < 0.25 and 0.10 <= share["val"] < 0.25
    assert share["train"] > 0.6
    # Fixed: it does not move with the data settings' seed or fractions.
    a = load_data(DataSettings(name="pydoc_text", split_seed=0))
    b = load_data(DataSettings(name="pydoc_text", split_seed=5, val_fraction=0.3))
    assert torch.equal(a.val.tensors[0], b.val.tensors[0])


def test_windows_hold_the_next_character_of_every_position():
    ids = encode("hello world, it’s “quoted”…")
    assert decode(ids) == "hello world, it's \"quoted\"..."
    assert encode("ß").tolist() == [UNKNOWN] and VOCAB_SIZE == len(SYMBOLS) + 1 == 97
    x, y = windows(ids, 4, 4)
    assert decode(x[0]) == "hell" and decode(y[0]) == "ello"
    assert torch.equal(x[1:, :], torch.stack([ids[i:i + 4] for i in range(4, 4 * len(x), 4)]))


def test_bundle_shapes_and_subsampling():
    data = load_data(DataSettings(name="pydoc_text", options={"context": 16, "max_train": 100,
                                                               "max_eval": 50}))
    assert data.input_shape == (16,) and data.num_classes == 97
    assert (len(data.train), len(data.val), len(data.test)) == (100, 50, 50)
    x, y = data.train[0]
    assert x.dtype == torch.long and torch.equal(x[1:], y[:-1])
    # what an export's manifest tells its users: the ids, and how to make them
    recipe = data.preprocessing
    assert recipe["known"] and recipe["symbols"] == SYMBOLS and recipe["unknown_id"] == UNKNOWN
    assert encode("A").item() == ord("A") - 31 and "ord(c) - 31" in recipe["description"]


@pytest.mark.parametrize("options, message", [
    ({"context": 0}, "data.options.context must be an integer >= 1, got 0"),
    ({"max_train": "many"}, "max_train / max_eval must be an integer >= 1, got 'many'"),
    ({"size": 3}, r"data.options for pydoc_text must be among \['context'"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(SetupError, match=message):
        load_data(DataSettings(name="pydoc_text", options=options))
