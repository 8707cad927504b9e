"""Screening: what rung 0 (a candidate before any fine-tuning) says about its final accuracy.

Fitted on the study's fine-tuned trials that have rung-0 figures: of the two rung-0 figures
(validation accuracy, and the KL divergence from the dense model, which still ranks candidates
when pruning leaves all of them near chance), the one whose rank correlation with the final
accuracy is higher predicts it, through a monotone (isotonic) fit plus a quantile of the fit's
residuals: a candidate's optimistic final accuracy. ``search.run.early_stopping`` stops the
candidate at rung 0 when that point, with its known costs, is dominated. The fit is honest about
itself: below ``min_trials`` fine-tuned trials, or when the rank correlation is weak (a model
whose pruned candidates all sit at chance), nothing is stopped at rung 0, and the note says why.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from search.run.early_stopping_settings import ScreeningSettings

# Rung-0 figure -> sign that makes larger better (a small divergence from dense is good).
FEATURES = {"rung0_accuracy": 1.0, "rung0_kl": -1.0}


@dataclass(frozen=True)
class Rung0Map:
    """Predicted final accuracy from one rung-0 figure."""

    feature: str
    correlation: float            # Spearman, over ``trials`` fine-tuned trials
    trials: int
    fit: "IsotonicRegression"  # noqa: F821 -- sklearn is imported when a map is fitted
    slack: float                  # ``quantile`` of the fit's residuals (>= 0)

    def predicted(self, rung0: Mapping[str, float]) -> float | None:
        """The final accuracy the fit expects (None: the candidate's figure is missing)."""
        value = rung0.get(self.feature)
        if value is None or not math.isfinite(value):
            return None
        return float(self.fit.predict([FEATURES[self.feature] * float(value)])[0])

    def optimistic(self, rung0: Mapping[str, float]) -> float | None:
        """The final accuracy this candidate may still reach (None: its figure is missing)."""
        expected = self.predicted(rung0)
        return None if expected is None else expected + self.slack


def hypervolume_gain(point: Sequence[float], finished: Sequence[FrozenTrial],
                     metrics: Sequence[str], directions: Sequence[str],
                     dense: Mapping[str, float] | None) -> float:
    """How much ``point`` (values of ``metrics``) would add to the hypervolume of the finished
    trials' values (normalised as ``search.decide.hypervolume`` does: costs by the dense model's)."""
    import pandas as pd

    from search.decide.hypervolume import hypervolume, normalised_losses

    rows = [list(t.values) for t in finished if t.values is not None]
    frame = pd.DataFrame(rows + [list(point)], columns=list(metrics))
    losses, reference = normalised_losses(frame, metrics, directions, dense)
    return max(0.0, hypervolume(losses, reference) - hypervolume(losses[:-1], reference))


def ranked_out(gain: float, recent: Sequence[float], settings: ScreeningSettings
               ) -> tuple[bool, str]:
    """Whether a candidate's predicted gain falls outside the top ``fine_tune_share`` of the
    ``recent`` candidates' (nothing is ranked out until half the window is known)."""
    if settings.fine_tune_share >= 1.0 or len(recent) < settings.window // 2:
        return False, ""
    threshold = float(np.quantile(recent, 1.0 - settings.fine_tune_share))
    out = gain <= 0.0 or gain < threshold
    return out, (f"predicted hypervolume gain {gain:.2e} below the top "
                 f"{settings.fine_tune_share:.0%} of the last {len(recent)} candidates' "
                 f"({threshold:.2e})")


def fit_rung0_map(trials: Sequence[FrozenTrial], accuracy_index: int,
                  settings: ScreeningSettings) -> tuple[Rung0Map | None, str]:
    """The map fitted on ``trials``' fine-tuned ones, or None; and one line saying which (or why
    not)."""
    rows = tuple((*(_figure(t.user_attrs, feature) for feature in FEATURES),
                  float(t.values[accuracy_index])) for t in trials
                 if t.state == TrialState.COMPLETE and t.values is not None
                 and "duplicate_of" not in t.user_attrs and "rung0_accuracy" in t.user_attrs)
    return _fit(rows, settings)


def _figure(attrs: Mapping[str, object], name: str) -> float | None:
    value = attrs.get(name)
    return None if value is None or not math.isfinite(float(value)) else float(value)


@functools.lru_cache(maxsize=16)
def _fit(rows: tuple[tuple[float | None, ...], ...],
         settings: ScreeningSettings) -> tuple[Rung0Map | None, str]:
    """``fit_rung0_map`` on the fine-tuned trials' (each ``FEATURES`` figure, final accuracy):
    fitted once per distinct set, since every candidate screened out (or stopped) in between
    leaves the study's fine-tuned trials as they were."""
    from scipy.stats import spearmanr                 # imported here: the CLI starts without them
    from sklearn.isotonic import IsotonicRegression
    if len(rows) < settings.min_trials:
        return None, (f"rung 0 waits for {settings.min_trials} fine-tuned trials "
                      f"({len(rows)} so far)")
    final = np.array([y for *_, y in rows], dtype=float)
    best: tuple[float, str, np.ndarray, np.ndarray] | None = None
    for column, (feature, sign) in enumerate(FEATURES.items()):
        x = np.array([math.nan if row[column] is None else sign * row[column] for row in rows])
        keep = np.isfinite(x)
        if keep.sum() < settings.min_trials or np.ptp(x[keep]) == 0 or np.ptp(final[keep]) == 0:
            continue
        rho = float(spearmanr(x[keep], final[keep]).statistic)
        if math.isfinite(rho) and (best is None or rho > best[0]):
            best = (rho, feature, x[keep], final[keep])
    if best is None or best[0] < settings.min_correlation:
        rho = ("undefined: the final accuracies or the rung-0 figures do not vary" if best is None
               else f"{best[0]:.2f} < {settings.min_correlation:g}")
        return None, (f"rung 0 says little here (rank correlation with the final accuracy "
                      f"{rho}, over {len(rows)} trials): candidates are judged from rung 1 on")
    rho, feature, x, y = best
    fit = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, y)
    slack = max(0.0, float(np.quantile(y - fit.predict(x), settings.quantile)))
    return (Rung0Map(feature, rho, len(x), fit, slack),
            f"rung 0 screens: final accuracy predicted from {feature} (rank correlation "
            f"{rho:.2f} over {len(x)} trials)")
