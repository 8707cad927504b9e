import pytest

from spaces.candidate import Candidate


def make() -> Candidate:
    return Candidate(sparsity={"conv": 0.5, "fc": 0.9}, bits={"conv": 8, "fc": 4},
                     criterion="random", granularity="unstructured", schedule="oneshot", seed=3,
                     options={"epochs": 2})


def test_round_trip_through_flat_dict():
    candidate = make()
    flat = candidate.to_flat_dict()
    assert flat["sparsity.conv"] == 0.5 and flat["bits.fc"] == 4 and flat["option.epochs"] == 2
    assert Candidate.from_flat_dict(flat) == candidate


def test_layer_order_is_kept():
    candidate = Candidate(sparsity={"z": 0.1, "a": 0.2}, bits={"z": 8, "a": 8})
    assert list(candidate.sparsity) == ["z", "a"]


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
def test_sparsity_outside_unit_interval_is_rejected(value):
    with pytest.raises(ValueError, match=rf"sparsity for 'fc' must be in \[0, 1\), got {value}"):
        Candidate(sparsity={"fc": value}, bits={"fc": 8})


def test_unknown_flat_key_is_rejected():
    with pytest.raises(ValueError, match="unknown candidate key 'color'"):
        Candidate.from_flat_dict({"color": "red"})
