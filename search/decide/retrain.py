"""Rebuild a completed trial and retrain it: the one path ``export`` and ``reevaluate`` share.

The study's saved config; its evaluation context (the one of a study run in this process, else
only what retraining needs: data, model and the stored dense reference ``dense.pt``, no search
space or sensitivity analysis); the trial's recorded candidate (a trial from before candidates
were recorded is replayed through the study's space, checked against the stored
``space_signature``); then ``trainers.trial.train_candidate``, the seeded function the trial ran,
and the deployable form of its model measured on the CPU (``trainers.export_form``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from search.config import ExperimentConfig, load_config
from search.schema import ConfigError
from spaces.candidate import Candidate
from trainers.checkpoint import load_checkpoint

if TYPE_CHECKING:
    from torch import nn
    from trainers.eval_context import EvalContext
    from trainers.schedules import ScheduleResult


@dataclass(frozen=True)
class Retrained:
    """A retrained candidate: the schedule's result, its deployable form (CPU, eval mode) and
    that form's validation (``accuracy``) and test (``test_accuracy``) metric."""

    run: "ScheduleResult"
    model: "nn.Module"
    measured: dict[str, float]


def retrain(candidate: Candidate, context: "EvalContext") -> Retrained:
    """Train ``candidate`` as its trial did (its seed, its schedule) and measure its deployable
    form: the model an export writes."""
    from trainers.export_form import exported_accuracy, exported_form
    from trainers.trial import train_candidate

    run = train_candidate(candidate, context)
    model = exported_form(run.model, candidate, context).cpu().eval()
    return Retrained(run, model, exported_accuracy(model, context))


def study_context(result: Any, config: ExperimentConfig, log: Callable[[str], None],
                  build: Mapping[str, Any]) -> "EvalContext":
    """What retraining a trial of ``result`` (a ``StudyResult``) needs, with the study's threads.

    A study run in this process carries its evaluation context (model factory, data, dense
    reference). A study opened from disk is rebuilt from ``config`` (its saved config); for a
    custom model ``build`` holds what ``run_search`` was given (``model_factory``, ``data``,
    ``loss_fn``, ``metric_fn``, ``dense_key``: see ``build_study_context``).
    """
    from search.run.context import eval_context, model_and_data, set_threads

    set_threads(config)
    context = getattr(result, "context", None)
    if context is not None:
        return context
    _check_sources(result.study.user_attrs.get("sources", {}), build)
    custom = any(build.get(k) is not None for k in ("data", "model_factory", "loss_fn"))
    _check_dense_reference(config, None if custom or build.get("dense_key")
                           else config.dense_key())
    recorded = result.study.user_attrs.get(DATA_ATTR) or {}
    parts = model_and_data(config, as_bundle(build.get("data"), config, **recorded),
                           build.get("model_factory"))
    return eval_context(config, parts, log=log, loss_fn=build.get("loss_fn"),
                        metric_fn=build.get("metric_fn"), dense_key=build.get("dense_key"),
                        keep_dense=True)   # the trials were measured against the stored one


def trial_candidate(result: Any, trial: Any, config: ExperimentConfig, context: Any,
                    log: Callable[[str], None]) -> Candidate:
    """The trial's candidate as it recorded it; a trial from before candidates were recorded is
    replayed through the study's space, which must match the stored one."""
    from search.run.context import bounded_space
    from search.run.study import comparable_signature, describe_difference

    recorded = trial.user_attrs.get("candidate")
    if recorded is not None:
        return Candidate.from_flat_dict(recorded)
    space = getattr(result, "space", None) or bounded_space(config, context, log=log)
    stored = result.study.user_attrs.get("space_signature")
    now = comparable_signature(space, stored)
    if stored is not None and stored != now:
        raise ConfigError(f"the study's stored search space differs from the one its config builds "
                          f"({describe_difference(stored, now)}); cannot rebuild trial "
                          f"{trial.number}")
    return space.from_params(trial.params)


def completed_trial(study: Any, number: int, done: str = "exported", name: str = "trial") -> Any:
    """Trial ``number`` of ``study``, refused unless it is COMPLETE (``done``: what is done with
    it, ``name``: what the caller calls the number, e.g. ``--trial``)."""
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(f"{name} must be one of the study's trial numbers 0..{len(trials) - 1}, "
                          f"got {number}")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise ConfigError(f"{name} must name a COMPLETE trial (only those can be {done}), got "
                          f"{number} ({trial.state.name})")
    return trial


def study_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config saved in the study folder (what the trials ran with), else the given one."""
    saved = config.study_dir / "config.yaml"
    if not saved.is_file():
        return config
    stored = load_config(saved)
    # Where the study lives (and its storage) may have moved since; the rest is as saved.
    return stored.with_overrides(output_dir=config.output_dir, study=config.study,
                                 search=config.search, device=config.device)


# Study attribute: what ``run_search`` was told about the user's data beyond the splits
# (``num_classes``, ``preprocessing``), so that a study reopened from disk says it again.
DATA_ATTR = "user_data"


def as_bundle(data: Any, config: ExperimentConfig, num_classes: int | None = None,
              preprocessing: Any = None) -> Any:
    """``data=`` as ``run_search`` took it: a ``DataBundle``, one split (train: val and test are
    carved from it with the study's saved fractions and seed, as the run carved them), or a
    ``(train, val, test)`` / ``(train, test)`` tuple of Datasets, DataLoaders or tensors;
    ``num_classes`` and ``preprocessing`` as the run recorded them (``DATA_ATTR``)."""
    from search.run.context import user_data
    from trainers.data import DataBundle

    if data is None or isinstance(data, DataBundle):
        return data
    splits = list(data) if isinstance(data, (tuple, list)) else [data]
    if not 1 <= len(splits) <= 3:
        raise ConfigError(f"data= takes a split or a (train, val, test) tuple, got "
                          f"{len(splits)} items")
    train, val, test = (splits[0], None, splits[1]) if len(splits) == 2 else (
        splits + [None, None])[:3]
    return user_data(config, train, val, test, num_classes, preprocessing)


def _check_sources(sources: Mapping[str, str], build: Mapping[str, Any]) -> None:
    """A model or data passed from Python cannot be rebuilt from config.yaml: ask for it."""
    for kind, argument in (("model", "model_factory"), ("data", "data")):
        origin = str(sources.get(kind, "config"))
        if origin.startswith("python") and build.get(argument) is None:
            raise ConfigError(f"this study's {kind} came from Python ({origin}); retrain its "
                              f"trials from the process that ran it, or pass {argument}=... to "
                              f"StudyResult.export / StudyResult.reevaluate")


def _check_dense_reference(config: ExperimentConfig, key: str | None) -> None:
    """Refuse to retrain from a missing or (when ``key`` is known) foreign dense reference: a
    retrained one would not reproduce the trial."""
    path = config.study_dir / "dense.pt"
    if not path.is_file():
        raise ConfigError(f"dense reference '{path}' is missing; the trial cannot be rebuilt "
                          f"(was the study folder moved without it?)")
    if key is None:
        return
    stored = load_checkpoint(path)
    if not isinstance(stored, dict) or stored.get("key") != key:
        raise ConfigError(f"dense reference '{path}' was trained with other settings than the "
                          f"study's config.yaml; the trial cannot be rebuilt")
