"""Optuna studies: open (or resume) a study, refuse a different one, count what is finished."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna

from search.config import ExperimentConfig, dump_config
from search.run.budget import FINISHED_STATES
from search.run.samplers import make_sampler
from search.run.storage import open_storage, storage_url
from search.schema import ConfigError, to_dict
from spaces.settings import SpaceSettings, settings_signature
from spaces.space import SearchSpace
from trainers.checkpoint import atomic_write_text


def study_definition(config: ExperimentConfig) -> dict:
    """What makes the trials of one study comparable: data, model, training, the pruning
    methods' fixed settings, costs, objectives, constraints.

    Budget, sampler, storage, device and paths may change between runs; these may not.
    """
    data = {k: v for k, v in to_dict(config.data).items() if k not in ("root", "download")}
    definition = {"seed": config.seed, "data": data}
    for key in ("model", "dense", "finetune", "pruning", "cost"):
        definition[key] = to_dict(getattr(config, key))
    definition["objectives"] = config.search.objectives.to_config_value()
    # Each trial's feasibility is decided when it runs (and the sampler learns from it):
    # other constraints would judge old and new trials by different bounds.
    definition["constraints"] = {k: float(v) for k, v in sorted(config.search.constraints.items())}
    return json.loads(json.dumps(definition))


def free_study_name(config: ExperimentConfig) -> str:
    """A study name not used in the output folder (offered when a resume is refused)."""
    for i in range(2, 1000):
        name = f"{config.study}-{i}"
        if not (Path(config.output_dir) / name).exists():
            return name
    return f"{config.study}-new"


def _refuse(config: ExperimentConfig, what: str, difference: str) -> ConfigError:
    return ConfigError(
        f"study '{config.study}' exists with {what} ({difference}); resume it with "
        f"its original config ({config.study_dir / 'config.yaml'}) or use a new study name, "
        f"e.g. --study {free_study_name(config)}")


# Sections of ``study_definition`` added after studies were first stored: a study stored without
# one resumes with any value of it (what its trials used is not on record).
SECTIONS_ADDED_LATER = ("pruning", "constraints")


def check_resumable(config: ExperimentConfig) -> bool:
    """Refuse early (before any training or write) to resume a study defined differently.

    Returns True when the study already exists. Also fails early on a storage that can't be opened.
    """
    storage = open_storage(storage_url(config), heartbeat=False)
    try:
        study_id = storage.get_study_id_from_name(config.study)
    except KeyError:
        saved = config.study_dir / "config.yaml"
        if saved.is_file():   # the folder holds a study its storage does not: never start over
            raise ConfigError(
                f"study folder '{config.study_dir}' holds study '{config.study}' (config.yaml), "
                f"but storage '{storage_url(config)}' has no study of that name: was the storage "
                f"moved, or given as a relative path (read from the current folder: "
                f"'{Path.cwd()}')? Give its URL with an absolute path (journal:////abs/path.log, "
                f"sqlite:////abs/path.db), or delete the folder to start the study again")
        return False
    attrs = storage.get_study_user_attrs(study_id)
    objectives = config.search.objectives.to_config_value()
    stored_obj = attrs.get("objectives")
    if stored_obj is not None and stored_obj != objectives:
        raise _refuse(config, "different objectives",
                      f"stored {_yaml_map(stored_obj)}, this config {_yaml_map(objectives)}")
    stored_def = attrs.get("definition")
    definition = without_new_defaults(study_definition(config), stored_def,
                                      study_definition(ExperimentConfig()))
    for key in SECTIONS_ADDED_LATER:   # a study stored before they were compared: unknown
        if isinstance(stored_def, dict) and key not in stored_def:
            definition.pop(key, None)
    if stored_def is not None and stored_def != definition:
        raise _refuse(config, "a different setup",
                      describe_difference(stored_def, definition, "config"))
    return True


def comparable_signature(space: SearchSpace, stored: dict | None) -> dict:
    """``space``'s signature (as stored) to compare with a study's ``stored`` one (see
    ``without_new_defaults``: space options added later, left at their defaults, are left out)."""
    signature = json.loads(json.dumps(space.signature()))
    defaults = {"settings": json.loads(json.dumps(settings_signature(SpaceSettings())))}
    return without_new_defaults(signature, stored, defaults)


_ABSENT = object()


def without_new_defaults(now: Any, stored: Any, defaults: Any) -> Any:
    """``now`` without the keys ``stored`` lacks whose value in ``now`` is their value in
    ``defaults`` (same nesting): a setting added by a later version of the tool, left at its
    default, must not make older studies impossible to resume; set to anything else, it is a
    real difference and stays."""
    if not isinstance(now, dict) or not isinstance(stored, dict):
        return now
    defaults = defaults if isinstance(defaults, dict) else {}
    return {key: without_new_defaults(value, stored[key], defaults.get(key)) if key in stored
            else value for key, value in now.items()
            if key in stored or value != defaults.get(key, _ABSENT)}


def _yaml_map(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def open_study(config: ExperimentConfig, space: SearchSpace, worker_index: int = 0) -> optuna.Study:
    """Create the study or load it; refuse to resume with another space or other objectives."""
    check_resumable(config)
    sampler = make_sampler(config, worker_index)
    try:
        study = optuna.create_study(
            study_name=config.study, storage=open_storage(storage_url(config)), load_if_exists=True,
            directions=config.search.objectives.directions, sampler=sampler)
    except ValueError as exc:
        raise _refuse(config, "different objective directions",
                      f"this config: {config.search.objectives.to_config_value()}") from exc
    trials_before = len(study.get_trials(deepcopy=False))
    if trials_before:   # a resume or a late worker: a seed of its own (see sampler_seed)
        study.sampler = make_sampler(config, worker_index, trials_before)
    stored_sig = study.user_attrs.get("space_signature")
    signature = comparable_signature(space, stored_sig)
    if stored_sig is None:
        study.set_user_attr("objectives", config.search.objectives.to_config_value())
        study.set_user_attr("definition", study_definition(config))
        study.set_user_attr("n_trials", config.search.n_trials)
        study.set_user_attr("space_signature", signature)    # last: marks the others as set
    elif stored_sig != signature:
        raise _refuse(config, "a different search space",
                      describe_difference(stored_sig, signature))
    return study


def describe_difference(old: dict, new: dict, path: str = "space") -> str:
    """The first differing key between two nested dicts, as 'path: old -> new'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return describe_difference(old.get(key), new.get(key), f"{path}.{key}")
    return f"{path}: stored {old!r}, now {new!r}"


LATENCY_THREADS_ATTR = "latency_threads"   # torch threads the dense reference's latency took


def reuse_dense_latency(study: optuna.Study, context: Any) -> None:
    """The stored dense reference's latency for the dense shapes in this process, if it runs at
    the thread count that figure was timed at (``trainers.trial.remember_dense_latency``)."""
    from trainers.trial import remember_dense_latency

    attrs = study.user_attrs
    remember_dense_latency(context, attrs.get("dense_reference"), attrs.get(LATENCY_THREADS_ATTR))


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def save_study_config(config: ExperimentConfig, sources: dict[str, str] | None = None) -> Path:
    """``config.yaml`` in the study folder (what status, pick, export and report read). When the
    model or the data came from Python objects (``sources``, as ``run_search`` records them), a
    header says so: the file's ``model`` / ``data`` sections are then not what ran."""
    path = config.study_dir / "config.yaml"
    python = {k: v for k, v in (sources or {}).items() if v.startswith("python:")}
    header = "".join(f"# {key}: {value} (passed to run_search; the {key} section below is not "
                     f"what ran)\n" for key, value in python.items())
    atomic_write_text(path, header + dump_config(config))
    return path
