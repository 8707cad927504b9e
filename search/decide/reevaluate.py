"""Re-evaluate front trials: retrain each one again with other seeds (and optionally longer
fine-tuning) and store the figures apart from the search's own.

The search keeps, among many candidates, the ones that scored best on one validation split with
one seed: their recorded accuracy is biased upwards (selection optimism), most at the compressed
end of the front, where many candidates are within an image or two of each other. Re-evaluation
retrains a trial's candidate as ``export`` does (``search.decide.retrain``: the same function the
trial ran, the deployable form measured on the CPU) ``repeats`` times, with seeds
``candidate.seed + 1 ... + repeats`` and ``epochs`` of fine-tuning (default: the trial's own), and
records each repeat in ``<study>/reevaluation.csv``: one row per (trial, seed, epochs). A repeat
stored already is kept, not trained again (an interrupted run resumes where it stopped; more
repeats add to the stored ones); to measure one again, delete its rows.
``<study>/reevaluation_summary.csv`` is rewritten from it after each repeat, for reading; the
readers (``pick --reevaluated``, the summary tables) compute from ``reevaluation.csv`` itself.

The summary of a trial (per fine-tune length) is the mean accuracy over its repeats, the Wilson 95%
interval of that mean over the ``val_samples`` validation predictions, and the spread (min, max)
over the repeats. The repeats read the same images, so pooling them (``repeats x val_samples``)
would overstate what the split can tell: the interval is the split's sampling noise, the spread
the training's (seed) noise. No torch at import: ``pick`` reads this module.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd
from optuna.trial import TrialState

from search.decide.display import DEFAULT_FLOOR
from search.decide.front_formats import shown_part
from search.decide.noise import interval_samples, wilson_interval
from search.decide.retrain import (Retrained, completed_trial, retrain, study_config,
                                   study_context, trial_candidate)
from search.schema import ConfigError
from spaces.candidate import Candidate
from trainers.checkpoint import atomic_write_text

if TYPE_CHECKING:
    from trainers.eval_context import EvalContext

FILE = "reevaluation.csv"
SUMMARY_FILE = "reevaluation_summary.csv"
DEFAULT_REPEATS = 3
COLUMNS = ["trial", "repeat", "seed", "epochs", "accuracy", "test_accuracy", "val_samples",
           "seconds"]
KEY = ["trial", "seed", "epochs"]
SUMMARY_COLUMNS = ["trial", "epochs", "repeats", "accuracy", "accuracy_lower95",
                   "accuracy_upper95", "accuracy_min", "accuracy_max", "test_accuracy",
                   "val_samples", "searched_accuracy", "optimism", "optimistic"]


def check_settings(repeats: int, epochs: int | None) -> None:
    """Refuse repeats < 1 and epochs < 1 (one line naming the flag, the rule and the value)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats (--repeats) must be an integer >= 1, got {repeats!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ConfigError(f"epochs (--epochs) must be an integer >= 1 (fine-tune epochs), "
                          f"got {epochs!r}")


def trained_epochs(candidate: Candidate, context: "EvalContext") -> int:
    """The epochs the candidate trains: fine-tune epochs (the candidate's own when the space
    searches them), or for ``during_training`` its epochs from scratch."""
    from trainers import method_parts

    if candidate.schedule == "during_training":
        return method_parts.from_scratch_settings(context).epochs
    return method_parts.finetune_settings(candidate, context).epochs


def with_training(candidate: Candidate, context: "EvalContext", seed: int, epochs: int
                  ) -> tuple[Candidate, "EvalContext"]:
    """``candidate`` with ``seed``, and it or ``context`` set to train ``epochs`` epochs (where
    ``trained_epochs`` reads them: the candidate's searched ``finetune_epochs``, the context's
    ``finetune``, or its ``pruning.during_epochs``); both unchanged when already so."""
    candidate = replace(candidate, seed=seed)
    if epochs == trained_epochs(candidate, context):
        return candidate, context
    if candidate.schedule == "during_training":
        return candidate, replace(context, pruning=replace(context.pruning, during_epochs=epochs))
    if "finetune_epochs" in candidate.options:
        return replace(candidate, options={**candidate.options, "finetune_epochs": epochs}), context
    return candidate, replace(context, finetune=replace(context.finetune, epochs=epochs))


def retrain_with(candidate: Candidate, context: "EvalContext", *, seed: int, epochs: int
                 ) -> Retrained:
    """One repeat: ``candidate`` retrained with ``seed`` for ``epochs`` epochs, measured."""
    return retrain(*with_training(candidate, context, seed, epochs))


def select_trials(result: Any, trials: Sequence[int] | None, floor: float | None) -> list[Any]:
    """The trials asked for (each COMPLETE, else refused), or the front's points at or above the
    display floor (``None``: every front point); Optuna's trial objects."""
    if trials is None:
        if floor is not None and not floor >= 0:
            raise ConfigError(f"floor (--floor) must be >= 0 (an accuracy drop from dense), "
                              f"got {floor}")
        front = result.front()
        if len(front):
            front = front[shown_part(front, result.front_display(floor))[0].to_numpy()]
        trials = front["trial"].astype(int).tolist() if len(front) else []
    return [completed_trial(result.study, int(t), "re-evaluated", "--trial")
            for t in dict.fromkeys(trials)]


def reevaluate_trials(result: Any, trials: Sequence[int] | None = None, *,
                      epochs: int | None = None, repeats: int = DEFAULT_REPEATS,
                      floor: float | None = DEFAULT_FLOOR, log: Callable[[str], None] = print,
                      **build: Any) -> pd.DataFrame:
    """Re-evaluate ``trials`` of ``result`` (a ``StudyResult``; default: its front at or above
    ``floor``) ``repeats`` times each; store every repeat (see the module docstring) and return
    the summary of the trials re-evaluated (``summarise``, over every repeat stored for them at
    these epochs). ``build``: as for ``export_trial``."""
    from trainers.data.splits import prediction_count

    check_settings(repeats, epochs)
    chosen = select_trials(result, trials, floor)
    rows = read_rows(result.folder)               # a malformed file is refused before training
    if not chosen:
        completed = result.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        log("no front point at or above the floor to re-evaluate (--all: every front point)"
            if completed else "the study has no completed trials yet: nothing to re-evaluate")
        return summarise(rows.iloc[0:0])
    config = study_config(result.config)
    context = study_context(result, config, log, build)
    val_samples = prediction_count(context.data.val)
    searched = searched_accuracies(result.trials())
    log(f"re-evaluating {len(chosen)} trial(s) x {repeats} repeat(s) ...")
    done = []
    for trial in chosen:
        candidate = trial_candidate(result, trial, config, context, log)
        length = trained_epochs(candidate, context) if epochs is None else epochs
        stored = set(zip(rows["trial"], rows["seed"], rows["epochs"]))
        for repeat in range(1, repeats + 1):
            seed = candidate.seed + repeat
            if (trial.number, seed, length) in stored:
                log(f"trial {trial.number} repeat {repeat}/{repeats} (seed {seed}, epochs "
                    f"{length}): stored already, kept")
                continue
            start = time.perf_counter()
            measured = retrain_with(candidate, context, seed=seed, epochs=length).measured
            seconds = time.perf_counter() - start
            row = {"trial": trial.number, "repeat": repeat, "seed": seed, "epochs": length,
                   "accuracy": measured["accuracy"], "test_accuracy": measured["test_accuracy"],
                   "val_samples": val_samples, "seconds": round(seconds, 3)}
            rows = merge_rows(rows, pd.DataFrame([row]))
            write_rows(result.folder, rows, searched, result.metric)
            log(f"trial {trial.number} repeat {repeat}/{repeats} (seed {seed}, epochs {length}): "
                f"val acc {measured['accuracy']:.4f} ({seconds:.1f} s)")
        done.append((trial.number, length))
    summary = summarise(rows, searched, result.metric)
    ran = pd.MultiIndex.from_tuples(done, names=["trial", "epochs"])
    return summary[summary.set_index(["trial", "epochs"]).index.isin(ran)].reset_index(drop=True)


def read_rows(folder: Path) -> pd.DataFrame:
    """The stored repeats of ``<folder>/reevaluation.csv`` (an empty frame when there is none)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS})
    try:
        rows = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"'{path}' is not a re-evaluation table ({exc}); move it away and run "
                          f"`sparsity-search reevaluate` again") from exc
    missing = [c for c in ("trial", "seed", "epochs", "accuracy") if c not in rows]
    if missing:
        raise ConfigError(f"'{path}' lacks the column(s) {missing} of a re-evaluation table; "
                          f"move it away and run `sparsity-search reevaluate` again")
    return rows


def merge_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` with ``new`` added, a new row replacing an old one of the same (trial, seed,
    epochs); sorted by trial, epochs, seed."""
    keep = ~old.set_index(KEY).index.isin(new.set_index(KEY).index)
    merged = pd.concat([df for df in (old[keep], new) if len(df)], ignore_index=True)
    merged = merged.reindex(columns=list(dict.fromkeys([*COLUMNS, *merged.columns])))
    return merged.sort_values(["trial", "epochs", "seed"], kind="stable").reset_index(drop=True)


def write_rows(folder: Path, rows: pd.DataFrame, searched: pd.Series | None = None,
               metric: str = "accuracy") -> None:
    """Write ``reevaluation.csv`` and, derived from it, ``reevaluation_summary.csv`` (each
    atomically)."""
    atomic_write_text(Path(folder) / FILE, rows.to_csv(index=False))
    atomic_write_text(Path(folder) / SUMMARY_FILE,
                      summarise(rows, searched, metric).to_csv(index=False))


def searched_accuracies(trials: pd.DataFrame) -> pd.Series:
    """trial -> the search's own accuracy of each completed trial (a ``trials_frame``)."""
    if trials.empty or "accuracy" not in trials:
        return pd.Series(dtype=float)
    done = trials[trials["state"] == "COMPLETE"]
    return done.set_index("trial")["accuracy"].astype(float)


def summarise(rows: pd.DataFrame, searched: pd.Series | None = None,
              metric: str = "accuracy") -> pd.DataFrame:
    """One row per (trial, epochs): repeats, mean ``accuracy`` with its Wilson 95% interval over
    ``val_samples`` (not over repeats x val_samples: the repeats read the same images; no
    interval when ``metric`` is not a fraction of predictions), the spread ``accuracy_min`` ..
    ``accuracy_max``, mean ``test_accuracy``, the search's own ``searched_accuracy``, ``optimism``
    (searched minus re-evaluated mean) and ``optimistic``: more than the interval's half-width."""
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SUMMARY_COLUMNS})
    rows = rows.assign(test_accuracy=rows.get("test_accuracy", np.nan),
                       val_samples=rows.get("val_samples", np.nan))
    table = rows.groupby(["trial", "epochs"], sort=True).agg(
        repeats=("seed", "size"), accuracy=("accuracy", "mean"),
        accuracy_min=("accuracy", "min"), accuracy_max=("accuracy", "max"),
        test_accuracy=("test_accuracy", "mean"), val_samples=("val_samples", "max")).reset_index()
    low, high = [], []
    for mean, n in zip(table["accuracy"], table["val_samples"]):
        size = interval_samples(int(n) if pd.notna(n) else None, metric)
        bounds = wilson_interval(mean, size) if size else (np.nan, np.nan)
        low.append(float(bounds[0]))
        high.append(float(bounds[1]))
    table["accuracy_lower95"], table["accuracy_upper95"] = low, high
    searched = searched if searched is not None else pd.Series(dtype=float)
    table["searched_accuracy"] = table["trial"].map(searched).astype(float)
    table["optimism"] = table["searched_accuracy"] - table["accuracy"]
    half = (table["accuracy_upper95"] - table["accuracy_lower95"]) / 2
    table["optimistic"] = (table["optimism"] > half).fillna(False).astype(bool)
    return table[SUMMARY_COLUMNS]


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as a text table: trial, the search's accuracy, the re-evaluated mean [95%
    interval], the spread over repeats, the mean test accuracy, and a selection-optimism note."""
    if summary.empty:
        return "(no trial re-evaluated)"

    def num(value: float) -> str:
        return "-" if pd.isna(value) else f"{value:.4f}"

    table = pd.DataFrame({
        "trial": summary["trial"].astype(int),
        "epochs": summary["epochs"].astype(int),
        "searched acc": summary["searched_accuracy"].map(num),
        "re-evaluated [95% CI]": [
            f"{num(m)} [{num(lo)}, {num(hi)}]" if pd.notna(lo) else num(m)
            for m, lo, hi in zip(summary["accuracy"], summary["accuracy_lower95"],
                                 summary["accuracy_upper95"])],
        "spread": [f"{num(a)}-{num(b)} ({int(r)} run{'s' if int(r) != 1 else ''})" for a, b, r in
                   zip(summary["accuracy_min"], summary["accuracy_max"], summary["repeats"])],
        "test acc": summary["test_accuracy"].map(num),
        "note": [f"selection optimism: {o:.4f} below searched" if flag else ""
                 for o, flag in zip(summary["optimism"], summary["optimistic"])]})
    return table.to_string(index=False)
