"""Export one trial as a deployable model: rebuilt, retrained as the trial did, made permanent.

Steps (the first ones shared with re-evaluation, ``search.decide.retrain``): read the study's
saved config, the data, the model and the dense reference (``dense.pt``; no search space, no
sensitivity analysis: the trial's candidate is the one it recorded), retrain with the trial's seed
through the same function the trial used (``trainers.trial.train_candidate``), take its deployable
form (``trainers.export_form``: masks and bit-widths folded into plain weights, pruned channels
physically removed for channel granularity), re-measure, and write (each file atomically) into
``<study>/exports/<trial>/``:

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
from search.decide.retrain import (completed_trial, retrain, study_config, study_context,
                                   trial_candidate)
from search.run.preflight import check_not_foreign, check_writable_folder
from search.schema import ConfigError
from spaces.candidate import Candidate
from trainers.checkpoint import atomic_write, atomic_write_text, load_checkpoint, save_checkpoint
from trainers.costs.metrics import column_name
from trainers.export_form import (example_batch, export_state, layer_table, parameter_counts,
                                  program_bytes, rebuild_exported)

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
    trial = completed_trial(result.study, trial_number)
    config = study_config(result.config)
    out = Path(folder) if folder else config.study_dir / "exports" / str(trial_number)
    check_writable_folder(out, "--to" if folder else "output_dir", "the export folder",
                          create=False)     # before the retraining, writing nothing
    if folder:
        check_not_foreign(out, "--to", "export", "manifest.json", f'"format": "{FORMAT}"')
    context = study_context(result, config, log, build)
    candidate = trial_candidate(result, trial, config, context, log)
    log(f"retraining trial {trial_number} ({candidate.schedule} schedule, seed "
        f"{candidate.seed}) ...")
    retrained = retrain(candidate, context)
    model, measured = retrained.model, retrained.measured
    removed = retrained.run.shrunk or candidate.granularity == "channel"
    example = example_batch(context)
    files, dynamic = write_export(out, model, config, candidate.bits, example)
    manifest = build_manifest(trial, candidate, context, model, measured, files, removed,
                              config, result.study.user_attrs.get("dense_reference", {}),
                              result.sources["model"])
    manifest["program"] = {"kind": "torch.export", "file": files["program"],
                           "dynamic_batch": dynamic,
                           "example_input_shape": list(example[0].shape)}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=False))
    repro = manifest["reproduction"]
    status = "reproduces" if repro["within_tolerance"] else "DOES NOT reproduce"
    label = column_name("accuracy", selection=result.metric)     # val_acc, val_f1_macro, ...
    log(f"exported trial {trial_number} to {out}: {label} {measured['accuracy']:.4f} "
        f"(recorded {repro['recorded_accuracy']:.4f}; {status} within 0.2 points)")
    log(f"input: shape {manifest['input_shape']} per sample; preprocessing: "
        f"{manifest['preprocessing']['description']}")
    return ExportResult(out, manifest)


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
                   config: ExperimentConfig, dense: Mapping[str, float],
                   model_source: str = "config") -> dict[str, Any]:
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
        "model_source": str(model_source),
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
    from trainers.models.attention import splitting

    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"'{folder}' is not a complete export (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"'{folder}' has export format {manifest.get('format')!r}, "
                          f"this version reads '{FORMAT}'")
    stored = load_checkpoint(folder / "weights.pt")
    source = str(manifest.get("model_source", "config"))
    if model_factory is None and source.startswith("python"):
        raise ConfigError(f"'{folder}': the model of this export came from Python ({source}), so "
                          f"config.yaml cannot rebuild it; pass model_factory=... (a callable "
                          f"returning a fresh model of that architecture)")
    if model_factory is None:
        config = load_config(folder / "config.yaml")
        model = build_model(config.model, tuple(manifest["input_shape"]), manifest["num_classes"])
    else:   # with its attention split, as the study's models were (trainers.models.attention)
        model = splitting(model_factory)()
    return rebuild_exported(stored, model)
