"""Pruning criteria: small objects that score weights or output channels; lower is pruned first.

A criterion scores one layer's weight tensor. ``score`` gives one value per weight (unstructured and
n:m granularities), ``channel_score`` one value per output channel / neuron (channel granularity).
Data-driven criteria (``needs_gradients``, ``needs_activations``) read ``GradientStats`` gathered
over a few training batches by ``trainers.pruning.gradients`` (gradients) and
``trainers.pruning.calibration`` (input activations). Adding a criterion touches its class, one
registry line below and the contract-test list in ``tests/trainers/pruning``. Torch is imported
where a score is computed, so the registry (names, granularities) is read without it when a config
is checked.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Callable, ClassVar

from trainers.method_names import GRANULARITY_NAMES

if TYPE_CHECKING:
    import torch

    from trainers.pruning.gradients import GradientStats

PER_WEIGHT = GRANULARITY_NAMES      # a per-weight score serves every granularity
CHANNEL_ONLY = ("channel",)


class Criterion:
    """Scores a layer's weights; lower scores are pruned first.

    Attributes:
        name: registry key.
        needs_gradients: True when scoring reads gradient statistics (taylor, snip, movement).
        needs_activations: True when scoring reads input-activation statistics (wanda).
        granularities: the granularities this criterion is defined for.
    """

    name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    needs_activations: ClassVar[bool] = False
    granularities: ClassVar[tuple[str, ...]] = PER_WEIGHT

    @property
    def needs_data(self) -> bool:
        """True when scoring needs batches of training data (gradients or activations)."""
        return self.needs_gradients or self.needs_activations

    def score(self, weight: torch.Tensor, *, layer_name: str, seed: int,
              stats: GradientStats | None = None) -> torch.Tensor:
        """One score per weight (same shape as ``weight``)."""
        raise NotImplementedError(f"criterion '{self.name}' has no per-weight score; "
                                  f"it works with granularities {list(self.granularities)}")

    def channel_score(self, weight: torch.Tensor, *, layer_name: str, seed: int,
                      stats: GradientStats | None = None) -> torch.Tensor:
        """One score per output channel (dim 0); by default the sum of the per-weight scores."""
        scores = self.score(weight, layer_name=layer_name, seed=seed, stats=stats)
        return scores.reshape(scores.shape[0], -1).sum(dim=1)

    def _require(self, stats: GradientStats | None) -> GradientStats:
        if stats is None:
            what = "activation" if self.needs_activations else "gradient"
            raise ValueError(f"criterion '{self.name}' needs {what} statistics "
                             "(pass batches of training data)")
        return stats


class MagnitudeCriterion(Criterion):
    """|w| per weight; the L1 norm of a channel for channel granularity."""

    name = "magnitude"

    def score(self, weight, *, layer_name, seed, stats=None):
        return weight.detach().abs()


class L2Criterion(Criterion):
    """L2 norm of each output channel / neuron (per weight it would equal ``magnitude``)."""

    name = "l2"
    granularities = CHANNEL_ONLY

    def channel_score(self, weight, *, layer_name, seed, stats=None):
        return weight.detach().reshape(weight.shape[0], -1).norm(p=2, dim=1)


class RandomCriterion(Criterion):
    """Uniform random scores seeded by the candidate's seed and the layer name: the baseline."""

    name = "random"

    @staticmethod
    def _generator(layer_name: str, seed: int) -> torch.Generator:
        import torch

        return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(layer_name.encode()))

    def score(self, weight, *, layer_name, seed, stats=None):
        import torch

        gen = self._generator(layer_name, seed)
        return torch.rand(weight.shape, generator=gen).to(weight.device)

    def channel_score(self, weight, *, layer_name, seed, stats=None):
        import torch

        gen = self._generator(layer_name, seed)
        return torch.rand(weight.shape[0], generator=gen).to(weight.device)


class TaylorCriterion(Criterion):
    """First-order Taylor: mean over batches of |w * dL/dw| per weight; per channel the mean of
    (sum over the channel of w * dL/dw)^2 (Molchanov et al. 2019)."""

    name = "taylor"
    needs_gradients = True

    def score(self, weight, *, layer_name, seed, stats=None):
        return self._require(stats).taylor_abs[layer_name] / stats.batches

    def channel_score(self, weight, *, layer_name, seed, stats=None):
        return self._require(stats).taylor_channel[layer_name] / stats.batches


class SnipCriterion(Criterion):
    """SNIP connection sensitivity |w * g| with g the gradient summed over the batches (Lee et al.
    2019); meant for pruning at or near initialisation (``during_training``)."""

    name = "snip"
    needs_gradients = True

    def score(self, weight, *, layer_name, seed, stats=None):
        return (weight.detach() * self._require(stats).grad_sum[layer_name]).abs()


class MovementCriterion(Criterion):
    """Movement: -w * g summed over the batches (Sanh et al. 2020, first-order): weights the loss
    pushes away from zero score high, weights pulled toward zero are pruned first."""

    name = "movement"
    needs_gradients = True

    def score(self, weight, *, layer_name, seed, stats=None):
        return -(weight.detach() * self._require(stats).grad_sum[layer_name])


class FPGMCriterion(Criterion):
    """Filter pruning via geometric median (He et al. 2019): a channel's score is the sum of its
    L2 distances to all other channels of the layer; the most redundant (closest to the geometric
    median) go first. Channels only."""

    name = "fpgm"
    granularities = CHANNEL_ONLY

    def channel_score(self, weight, *, layer_name, seed, stats=None):
        import torch

        rows = weight.detach().reshape(weight.shape[0], -1).float()
        return torch.cdist(rows, rows, p=2).sum(dim=1)


class WandaCriterion(Criterion):
    """Wanda (Sun et al. 2024): |w_ij| times the L2 norm of input feature j over a few calibration
    batches (every sample and position). A weight on an input that is always small matters
    little, however large the weight. A convolution's input feature is its input channel (the
    norm over positions, applied at every kernel position). Ranked per layer like every criterion
    here (the paper also compares within each output row)."""

    name = "wanda"
    needs_activations = True

    def score(self, weight, *, layer_name, seed, stats=None):
        norms = self._require(stats).input_sq[layer_name].sqrt().to(weight.device)
        rows, per_group = weight.shape[0], weight.shape[1]
        groups = norms.numel() // per_group       # > 1: a grouped convolution
        norms = norms.reshape(groups, 1, per_group).expand(groups, rows // groups, per_group)
        norms = norms.reshape(rows, per_group, *([1] * (weight.dim() - 2)))
        return weight.detach().abs() * norms


CRITERIA: dict[str, Callable[[], Criterion]] = {
    cls.name: cls for cls in (MagnitudeCriterion, L2Criterion, RandomCriterion, TaylorCriterion,
                              SnipCriterion, MovementCriterion, FPGMCriterion, WandaCriterion)
}


def get_criterion(name: str) -> Criterion:
    """The registered criterion ``name``; unknown names list the valid ones."""
    if name not in CRITERIA:
        raise ValueError(f"criterion must be one of {sorted(CRITERIA)}, got '{name}'")
    return CRITERIA[name]()


def criteria_for(granularity: str) -> list[str]:
    """Registered criteria defined for ``granularity`` (registry order)."""
    return [name for name, cls in CRITERIA.items() if granularity in cls.granularities]
