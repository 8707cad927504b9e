"""Export one trial as a deployable model: rebuilt, retrained as the trial did, made permanent.

Steps: read the study's saved config, the data, the model and the dense reference (``dense.pt``;
no search space, no sensitivity analysis: the trial's candidate is the one it recorded; only a
trial from before candidates were recorded is replayed through the study's space, checked against
the stored ``space_signature``), retrain with the trial's seed through the same function the trial used
(``trainers.trial.train_candidate``), take its deployable form (``trainers.export_form``: masks
and bit-widths folded into plain weights, pruned channels physically removed for channel
granularity), re-measure, and write (each file atomically) into ``<study>/exports/<trial>/``:

- ``weights.pt``   weights-only checkpoint: float tensors plus, for quantized layers, integer codes
                   and one scale per output channel; load it with ``load_exported(folder)``;
- ``model.pt2``    a ``torch.export`` program: ``torch.export.load(path).module()`` needs only torch;
- ``config.yaml``  the study config (architecture, data split) the loader rebuilds from;
- ``manifest.json`` the candidate, every recorded and re-measured metric, per-layer sparsity, bits and
                   shapes, the input preprocessing (how a raw input becomes what the model reads),
                   file sizes and the versions used. Written last: its presence means the
                   export is complete.
"""
from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from search.config import ExperimentConfig, dump_config, load_config
from search.schema import ConfigError
from spaces.candidate import Candidate
from trainers.checkpoint import atomic_write, atomic_write_text, load_checkpoint, save_checkpoint
from trainers.export_form import (example_batch, export_state, exported_accuracy, exported_form,
                                  layer_table, parameter_counts, program_bytes, rebuild_exported)

if TYPE_CHECKING:
    from torch import nn

FORMAT = "sparsity-search-export/1"
REPRODUCE_TOLERANCE = 0.002          # accuracy points / 100: 0.2 points
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    manifest: dict[str, Any]

    @property
    def reproduced(self) -> bool:
        return bool(self.manifest["reproduction"]["within_tolerance"])


def export_trial(result: Any, trial_number: int, *, folder: str | Path | None = None,
                 log: Callable[[str], None] = print, **build: Any) -> ExportResult:
    """Export completed trial ``trial_number`` of ``result`` (a ``StudyResult``).

    A study run in this process carries its evaluation context (model factory, data, dense
    reference) and is exported from it. A study opened from disk is rebuilt from its saved config;
    for a custom model pass what ``run_search`` was given as ``build`` (``model_factory``,
    ``data``, ``loss_fn``, ``metric_fn``, ``dense_key``: see ``build_study_context``).
    """
    from search.run.context import eval_context, model_and_data, set_threads
    from trainers.trial import train_candidate

    trial = _completed_trial(result.study, trial_number)
    config = _study_config(result.config)
    set_threads(config)
    context = getattr(result, "context", None)
    if context is None:    # only what retraining needs: data, model, the stored dense reference
        _check_sources(result.study.user_attrs.get("sources", {}), build)
        custom = any(build.get(k) is not None for k in ("data", "model_factory", "loss_fn"))
        _check_dense_reference(config, None if custom or build.get("dense_key")
                               else config.dense_key())
        parts = model_and_data(config, build.get("data"), build.get("model_factory"))
        context = eval_context(config, parts, log=log, loss_fn=build.get("loss_fn"),
                               metric_fn=build.get("metric_fn"), dense_key=build.get("dense_key"))
    candidate = trial_candidate(result, trial, config, context, log)
    log(f"retraining trial {trial_number} ({candidate.schedule} schedule, seed "
        f"{candidate.seed}) ...")
    run = train_candidate(candidate, context)
    model = exported_form(run.model, candidate, context).cpu().eval()
    removed = run.shrunk or candidate.granularity == "channel"
    measured = exported_accuracy(model, context)
    out = Path(folder) if folder else config.study_dir / "exports" / str(trial_number)
    example = example_batch(context)
    files, dynamic = write_export(out, model, config, candidate.bits, example)
    manifest = build_manifest(trial, candidate, context, model, measured, files, removed,
                              config, result.study.user_attrs.get("dense_reference", {}))
    manifest["program"] = {"kind": "torch.export", "file": files["program"],
                           "dynamic_batch": dynamic,
                           "example_input_shape": list(example[0].shape)}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=False))
    repro = manifest["reproduction"]
    status = "reproduces" if repro["within_tolerance"] else "DOES NOT reproduce"
    log(f"exported trial {trial_number} to {out}: val_acc {measured['accuracy']:.4f} "
        f"(recorded {repro['recorded_accuracy']:.4f}; {status} within 0.2 points)")
    log(f"input: shape {manifest['input_shape']} per sample; preprocessing: "
        f"{manifest['preprocessing']['description']}")
    return ExportResult(out, manifest)


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


def _completed_trial(study: Any, number: int) -> Any:
    from optuna.trial import TrialState

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ConfigError(f"trial must be one of the study's trial numbers 0..{len(trials) - 1}, "
                          f"got {number}")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        raise ConfigError(f"trial {number} is {trial.state.name}, only COMPLETE trials can be "
                          f"exported")
    return trial


def _study_config(config: ExperimentConfig) -> ExperimentConfig:
    """The config saved in the study folder (what the trials ran with), else the given one."""
    saved = config.study_dir / "config.yaml"
    if not saved.is_file():
        return config
    stored = load_config(saved)
    # Where the study lives (and its storage) may have moved since; the rest is as saved.
    return stored.with_overrides(output_dir=config.output_dir, study=config.study,
                                 search=config.search, device=config.device)


def _check_sources(sources: Mapping[str, str], build: Mapping[str, Any]) -> None:
    """A model or data passed from Python cannot be rebuilt from config.yaml: ask for it."""
    for kind, argument in (("model", "model_factory"), ("data", "data")):
        origin = str(sources.get(kind, "config"))
        if origin.startswith("python") and build.get(argument) is None:
            raise ConfigError(f"this study's {kind} came from Python ({origin}); export it from "
                              f"the process that ran it, or pass {argument}=... to "
                              f"StudyResult.export")


def _check_dense_reference(config: ExperimentConfig, key: str | None) -> None:
    """Refuse to export from a missing or (when ``key`` is known) foreign dense reference: a
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


def write_export(out: Path, model: nn.Module, config: ExperimentConfig, bits: Mapping[str, int],
                 example: list[Any]) -> tuple[dict[str, str], bool]:
    """Write weights.pt, model.pt2 and config.yaml (atomically); return their names and whether
    the program takes any batch size."""
    out.mkdir(parents=True, exist_ok=True)
    stale = out / "manifest.json"
    if stale.exists():
        stale.unlink()          # an export in progress has no manifest
    save_checkpoint({"format": FORMAT, **export_state(model, bits)}, out / "weights.pt")
    program, dynamic = program_bytes(model, example)
    atomic_write(out / "model.pt2", lambda tmp: Path(tmp).write_bytes(program))
    atomic_write_text(out / "config.yaml", dump_config(config))
    return {"weights": "weights.pt", "program": "model.pt2", "config": "config.yaml",
            "manifest": "manifest.json"}, dynamic


def versions() -> dict[str, str | None]:
    import numpy
    import optuna
    import torch

    commit = None
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version
        package = version("sparsity-search")
    except Exception:
        package = None
    return {"sparsity_search": package, "git_commit": commit, "python": platform.python_version(),
            "torch": torch.__version__, "optuna": optuna.__version__, "numpy": numpy.__version__}


def build_manifest(trial: Any, candidate: Candidate, context: Any, model: nn.Module,
                   measured: Mapping[str, float], files: Mapping[str, str], removed: bool,
                   config: ExperimentConfig, dense: Mapping[str, float]) -> dict[str, Any]:
    layers = layer_table(model, candidate, context.layers)
    recorded = {k: v for k, v in trial.user_attrs.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    labels = {k: v for k, v in trial.user_attrs.items()
              if isinstance(v, str) and k != "fail_reason"}
    delta = abs(measured["accuracy"] - float(recorded.get("accuracy", float("nan"))))
    return {
        "format": FORMAT,
        "study": config.study,
        "trial": trial.number,
        "candidate": candidate.to_flat_dict(),
        "metrics": recorded,
        "labels": labels,
        "dense_reference": dict(dense),
        "measured": dict(measured),
        "reproduction": {"recorded_accuracy": recorded.get("accuracy"),
                         "exported_accuracy": measured["accuracy"],
                         "abs_difference": delta, "tolerance": REPRODUCE_TOLERANCE,
                         "within_tolerance": bool(delta <= REPRODUCE_TOLERANCE)},
        "channels_removed": removed,
        "layers": layers,
        "params": parameter_counts(context.model_factory(), model),
        "input_shape": list(context.data.input_shape),
        "preprocessing": dict(context.data.preprocessing),
        "num_classes": int(context.data.num_classes),
        "files": dict(files),
        "versions": versions(),
    }


def load_exported(folder: str | Path, model_factory: Callable[[], nn.Module] | None = None
                  ) -> nn.Module:
    """The exported model as an ``nn.Module`` in eval mode (our API; needs this package).

    The architecture comes from the export's ``config.yaml`` (or ``model_factory``), resized to the
    stored shapes; quantized layers are rebuilt from their integer codes and scales.
    """
    from trainers.models import build_model

    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"'{folder}' is not a complete export (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"'{folder}' has export format {manifest.get('format')!r}, "
                          f"this version reads '{FORMAT}'")
    stored = load_checkpoint(folder / "weights.pt")
    if model_factory is None:
        config = load_config(folder / "config.yaml")
        model = build_model(config.model, tuple(manifest["input_shape"]), manifest["num_classes"])
    else:
        model = model_factory()
    return rebuild_exported(stored, model)
