"""The ``search.early_stopping`` config section: when a candidate may be stopped at a rung (plain data:
the config reads it without loading the trial loop)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from search.schema import ConfigError
from trainers.costs.metrics import known_before_training


@dataclass(frozen=True)
class ScreeningSettings:
    """The ``search.early_stopping.screening`` section: rung 0, before any fine-tuning."""

    enabled: bool = True
    # Fine-tuned trials with rung-0 figures needed before anything is stopped at rung 0.
    min_trials: int = 10
    # Rung 0 stops candidates only while its rank correlation with the final accuracy (over the
    # study's fine-tuned trials) is at least this; below it, rungs 1.. decide alone.
    min_correlation: float = 0.5
    # The predicted final accuracy is the monotone fit plus this quantile of its residuals.
    quantile: float = 0.9
    bn_batches: int = 4                # training batches re-estimating batch-norm statistics
    # Validation samples rung 0 measures: a fixed random subset of the split when it is larger
    # (None: the whole split). A candidate screened out costs a pass over these, not over all.
    samples: int | None = 512
    # Of the candidates that could still reach the front, fine-tune only those whose predicted
    # hypervolume gain (median prediction) is in this top share of the last ``window`` such
    # candidates (1: fine-tune every one that could reach the front).
    fine_tune_share: float = 1.0
    window: int = 20


    def __post_init__(self) -> None:
        if self.min_trials < 2:
            raise ConfigError("search.early_stopping.screening.min_trials must be >= 2, "
                              f"got {self.min_trials}")
        if not -1.0 <= self.min_correlation <= 1.0:
            raise ConfigError("search.early_stopping.screening.min_correlation must be in "
                              f"[-1, 1], got {self.min_correlation}")
        if not 0.0 <= self.quantile <= 1.0:
            raise ConfigError("search.early_stopping.screening.quantile must be in [0, 1], "
                              f"got {self.quantile}")
        if not 0.0 < self.fine_tune_share <= 1.0:
            raise ConfigError("search.early_stopping.screening.fine_tune_share must be in (0, 1], "
                              f"got {self.fine_tune_share}")
        if self.window < 2:
            raise ConfigError(f"search.early_stopping.screening.window must be >= 2, "
                              f"got {self.window}")
        if self.samples is not None and (isinstance(self.samples, bool)
                                         or not isinstance(self.samples, int) or self.samples < 1):
            raise ConfigError("search.early_stopping.screening.samples must be a whole number "
                              f">= 1 or null (the whole validation split), got {self.samples!r}")
        if self.bn_batches < 0:
            raise ConfigError("search.early_stopping.screening.bn_batches must be >= 0, "
                              f"got {self.bn_batches}")


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """The ``search.run.early_stopping`` section."""

    # null (default): on whenever the objectives allow it (accuracy + costs known before
    # training); true: on, and an error when they do not; false: off.
    enabled: bool | None = None
    rungs: tuple[int, ...] = (1, 2)    # fine-tune epochs after which accuracy is checked
    margin: float = 0.03               # optimistic accuracy gain still possible after a rung
    # Also learn from finished trials: a candidate's optimistic final accuracy is at least the
    # best final accuracy of a finished trial that looked no better at the same rung.
    learned_bound: bool = True
    screening: ScreeningSettings = field(default_factory=ScreeningSettings)

    def describe(self, last_epoch: int | None = None) -> str:
        """One line for the start of a run: when a candidate stops (``last_epoch``: the most
        fine-tune epochs a candidate runs; rungs at or past it are never reached)."""
        learned = (", or the best final accuracy of a finished trial that looked no better"
                   if self.learned_bound else "")
        screening = ("; rung 0: once " f"{self.screening.min_trials} trials are fine-tuned, a "
                     "candidate whose final accuracy predicted right after pruning is dominated "
                     "is screened out before fine-tuning (search.early_stopping.screening."
                     "enabled: false turns rung 0 off)" if self.screening.enabled else "")
        reached = [r for r in self.rungs if last_epoch is None or r < last_epoch]
        during = (f"a candidate stops after {'/'.join(map(str, reached))} fine-tune epoch(s) "
                  f"when its optimistic final accuracy (val accuracy + {self.margin:g}{learned}) "
                  f"is dominated" if reached else
                  f"no rung ({'/'.join(map(str, self.rungs))}) comes before the last fine-tune "
                  f"epoch ({last_epoch}), so no candidate stops during fine-tuning")
        return (f"early stopping on: {during}{screening} "
                f"(search.early_stopping.enabled: false turns it all off)")

    def active(self, metrics: Sequence[str]) -> bool:
        """Whether trials with these objectives are stopped early."""
        if self.enabled is None:
            return not unknown_before_training(metrics)
        return self.enabled

    def __post_init__(self) -> None:
        if not self.rungs:
            raise ConfigError("search.early_stopping.rungs must list at least one fine-tune "
                              "epoch (search.early_stopping.enabled: false turns early stopping "
                              "off), got []")
        if any(r < 1 for r in self.rungs):
            raise ConfigError(f"search.early_stopping.rungs must be epochs >= 1, got {list(self.rungs)}")
        if not 0.0 <= self.margin <= 1.0:
            raise ConfigError(f"search.early_stopping.margin must be in [0, 1], got {self.margin}")


def unknown_before_training(metrics: Sequence[str]) -> list[str]:
    """The objectives that stop early stopping: all but accuracy must be known before training
    (and accuracy must be one of them)."""
    known = known_before_training()     # the analytic costs (trainers.costs.metrics)
    unknown = [m for m in metrics if m != "accuracy" and m not in known]
    return unknown if "accuracy" in metrics else unknown + ["(no accuracy)"]


def check_objectives(settings: EarlyStoppingSettings, metrics: Sequence[str]) -> None:
    """Early stopping turned on explicitly needs every objective but accuracy to be known before
    training; left at its default it turns itself off for such objectives."""
    if settings.enabled is not True:
        return
    if unknown_before_training(metrics):
        raise ConfigError("search.early_stopping needs 'accuracy' plus objectives known before "
                          f"training ({known_before_training()}), got {list(metrics)}")
