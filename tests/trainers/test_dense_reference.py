"""The dense reference is trained once per study folder, even when two processes (here: two
threads, each with its own lock handle, as two processes have) start a new study at once."""
from __future__ import annotations

import threading

import torch

from trainers.data import DataSettings, load_data
from trainers.models import SmallCNN
from trainers.reference import load_or_train_dense
from trainers.train_settings import TrainSettings


def test_two_starts_at_once_train_the_dense_reference_once(tmp_path):
    data = load_data(DataSettings(name="synthetic", options={"samples": 96, "classes": 4}))
    built, logs, states = [], [], []

    def factory():
        built.append(1)
        return SmallCNN(1, 4, width=4)

    def start():
        states.append(load_or_train_dense(
            tmp_path / "dense.pt", "key", factory, data, TrainSettings(epochs=2, lr=0.01),
            batch_size=32, device=torch.device("cpu"), seed=0, log=logs.append))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and sum(line.startswith("training the dense") for line in logs) == 1
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.pt"]   # no lock file beside it
