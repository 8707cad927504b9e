"""Export one trial as a deployable model: rebuilt, retrained as the trial did, made permanent.

Steps: read the study's saved config and the dense reference (``dense.pt``), rebuild the search
space and check it against the stored ``space_signature``, replay the trial's parameters through
``SearchSpace.from_params``, retrain with the trial's seed through the same function the trial used
(``trainers.trial.train_candidate``), take its deployable form (``exported_form``: masks and
bit-widths folded into plain weights, pruned channels physically removed by ``shrink_model`` for
channel granularity), re-measure, and write (each file atomically) into
``<study>/exports/<trial>/``:

- ``weights.pt``   weights-only checkpoint: float tensors plus, for quantized layers, integer codes
                   and one scale per output channel; load it with ``load_exported(folder)``;
- ``model.pt2``    a ``torch.export`` program: ``torch.export.load(path).module()`` needs only torch;
- ``config.yaml``  the study config (architecture, data split) the loader rebuilds from;
- ``manifest.json`` the candidate, every recorded and re-measured metric, per-layer sparsity, bits and
                   shapes, file sizes and the versions used. Written last: its presence means the
                   export is complete.
"""
from __future__ import annotations

import io
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from search.config import ExperimentConfig, dump_config, load_config
from search.schema import ConfigError
from spaces.candidate import Candidate
from trainers.checkpoint import atomic_write, atomic_write_text, load_checkpoint, save_checkpoint
from trainers.quantization import quant_scale

FORMAT = "sparsity-search-export/1"
REPRODUCE_TOLERANCE = 0.002          # accuracy points / 100: 0.2 points
REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_TOLERANCE = 1e-3               # |w / scale - round(w / scale)| for a weight to be "on the grid"


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
    from search.context import build_study_context, set_threads
    from search.study import comparable_signature, describe_difference
    from trainers.training import measure_metric
    from trainers.trial import exported_form, train_candidate

    trial = _completed_trial(result.study, trial_number)
    config = _study_config(result.config)
    set_threads(config)
    if getattr(result, "context", None) is not None and getattr(result, "space", None) is not None:
        context, space = result.context, result.space
    else:
        _check_sources(result.study.user_attrs.get("sources", {}), build)
        custom = any(build.get(k) is not None for k in ("data", "model_factory", "loss_fn"))
        _check_dense_reference(config, None if custom or build.get("dense_key")
                               else config.dense_key())
        context, space = build_study_context(config, log=log, **build)
    stored = result.study.user_attrs.get("space_signature")
    now = comparable_signature(space, stored)
    if stored is not None and stored != now:
        raise ConfigError(f"the study's stored search space differs from the one its config builds "
                          f"({describe_difference(stored, now)}); cannot rebuild trial "
                          f"{trial_number}")
    candidate = space.from_params(trial.params)
    recorded = trial.user_attrs.get("candidate")
    if recorded is not None and Candidate.from_flat_dict(recorded) != candidate:
        raise ConfigError(f"trial {trial_number}: parameters replay to {candidate.to_flat_dict()}, "
                          f"but the trial recorded {recorded}")
    log(f"retraining trial {trial_number} ({candidate.schedule} schedule, seed "
        f"{candidate.seed}) ...")
    run = train_candidate(candidate, context)
    model = exported_form(run.model, candidate, context).cpu().eval()
    removed = run.shrunk or candidate.granularity == "channel"
    cpu = torch.device("cpu")
    measured = {
        "accuracy": measure_metric(model, context.data.val, cpu, context.metric_fn),
        "test_accuracy": measure_metric(model, context.data.test, cpu, context.metric_fn),
    }
    out = Path(folder) if folder else config.study_dir / "exports" / str(trial_number)
    # Two samples: torch.export specialises a batch dimension of size 1 to a constant.
    example = [torch.stack([context.data.val[i][0] for i in range(min(2, len(context.data.val)))])
               .cpu()]
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
    return ExportResult(out, manifest)


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


def quantized_codes(weight: torch.Tensor, bits: int) -> dict[str, Any] | None:
    """Integer codes and per-output-channel scales that reproduce an already fake-quantized
    weight exactly (to float precision); ``None`` when no such scales are found.

    Normally each row's scale is max|w| / qmax. After channel removal a row may have lost the
    input channel that held its largest value; its values are still integer multiples of the
    original scale, so for <= 8 bits the row's scale is searched as max|w| / m, m = 1..qmax.
    """
    qmax = 2 ** (bits - 1) - 1
    rows = weight.reshape(weight.shape[0], -1).to(torch.float64)
    scale = quant_scale(weight, bits).reshape(-1).to(torch.float64)

    def misfit(scales: torch.Tensor) -> torch.Tensor:
        codes = rows / scales[:, None]
        return (codes - codes.round()).abs().amax(dim=1)

    bad = misfit(scale) > CODE_TOLERANCE
    if bad.any() and bits <= 8:
        for level in range(1, qmax + 1):
            index = bad.nonzero().squeeze(1)
            peak = rows[index].abs().amax(dim=1)
            candidate = torch.where(peak > 0, peak / level, torch.ones_like(peak))
            ratio = rows[index] / candidate[:, None]
            fits = (ratio - ratio.round()).abs().amax(dim=1) <= CODE_TOLERANCE
            scale[index[fits]] = candidate[fits]
            bad = misfit(scale) > CODE_TOLERANCE
            if not bad.any():
                break
    if (misfit(scale) > CODE_TOLERANCE).any():
        return None
    codes = (rows / scale[:, None]).round().clamp(-qmax, qmax).reshape(weight.shape)
    dtype = torch.int8 if bits <= 8 else torch.int16
    return {"codes": codes.to(dtype), "scale": scale.to(torch.float32), "bits": bits}


def write_export(out: Path, model: nn.Module, config: ExperimentConfig, bits: Mapping[str, int],
                 example: list[torch.Tensor]) -> tuple[dict[str, str], bool]:
    """Write weights.pt, model.pt2 and config.yaml (atomically); return their names and whether
    the program takes any batch size."""
    out.mkdir(parents=True, exist_ok=True)
    stale = out / "manifest.json"
    if stale.exists():
        stale.unlink()          # an export in progress has no manifest
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    quantized = {}
    modules = dict(model.named_modules())
    for name, width in bits.items():
        if width < 32:
            codes = quantized_codes(modules[name].weight.detach().cpu(), width)
            if codes is not None:      # else the float weight (on its grid) is stored as is
                quantized[name] = codes
                state.pop(f"{name}.weight")
    save_checkpoint({"format": FORMAT, "state_dict": state, "quantized": quantized},
                    out / "weights.pt")
    program, dynamic = export_program(model, example)
    buffer = io.BytesIO()      # torch.export.save wants a name ending in .pt2 or a buffer
    torch.export.save(program, buffer)
    atomic_write(out / "model.pt2", lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    atomic_write_text(out / "config.yaml", dump_config(config))
    return {"weights": "weights.pt", "program": "model.pt2", "config": "config.yaml",
            "manifest": "manifest.json"}, dynamic


def export_program(model: nn.Module, example: list[torch.Tensor]) -> tuple[Any, bool]:
    """A ``torch.export`` program with a dynamic batch dimension (static if that fails)."""
    args = tuple(example)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    try:
        return torch.export.export(model, args,
                                   dynamic_shapes=tuple({0: batch} for _ in args)), True
    except Exception:  # some models specialise the batch size; a fixed-batch program still runs
        return torch.export.export(model, args), False


def layer_table(model: nn.Module, candidate: Candidate, context: Any) -> list[dict[str, Any]]:
    """Per prunable layer: requested and measured sparsity, bits, shapes and parameter counts."""
    modules = dict(model.named_modules())
    rows = []
    for layer in context.layers:
        weight = modules[layer.name].weight.detach()
        nonzero = int(torch.count_nonzero(weight))
        bits = candidate.bits.get(layer.name, 32)
        rows.append({
            "layer": layer.name, "kind": layer.kind,
            "sparsity": candidate.sparsity.get(layer.name, 0.0),
            "measured_sparsity": 1.0 - nonzero / layer.params,
            "bits": bits,
            "levels_max": _levels(weight, bits),
            "shape_before": list(layer.weight_shape), "shape_after": list(weight.shape),
            "params_before": layer.params, "params_after": int(weight.numel()),
            "nonzero_after": nonzero,
        })
    return rows


def _levels(weight: torch.Tensor, bits: int) -> int | None:
    """Most distinct nonzero values in one output channel (<= 2^bits - 2 when quantized)."""
    if bits >= 32:
        return None
    flat = weight.reshape(weight.shape[0], -1)
    return max(int(torch.unique(row[row != 0]).numel()) for row in flat)


def versions() -> dict[str, str | None]:
    import numpy
    import optuna

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
    layers = layer_table(model, candidate, context)
    recorded = {k: v for k, v in trial.user_attrs.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    labels = {k: v for k, v in trial.user_attrs.items()
              if isinstance(v, str) and k != "fail_reason"}
    delta = abs(measured["accuracy"] - float(recorded.get("accuracy", float("nan"))))
    dense_model = context.model_factory()
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
        "params": {"dense_total": int(sum(p.numel() for p in dense_model.parameters())),
                   "exported_total": int(sum(p.numel() for p in model.parameters())),
                   "exported_nonzero": int(sum(int(torch.count_nonzero(p))
                                               for p in model.parameters()))},
        "input_shape": list(context.data.input_shape),
        "num_classes": int(context.data.num_classes),
        "files": dict(files),
        "versions": versions(),
    }


def fit_shapes(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Resize parameters and buffers of ``model`` to the shapes in ``state`` (shrunk layers)."""
    for key, tensor in state.items():
        module_name, _, attr = key.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        current = getattr(module, attr, None)
        if not isinstance(current, torch.Tensor) or current.shape == tensor.shape:
            continue
        fresh = torch.empty_like(tensor, dtype=current.dtype)
        if isinstance(current, nn.Parameter):
            setattr(module, attr, nn.Parameter(fresh, requires_grad=current.requires_grad))
        else:
            module.register_buffer(attr, fresh)
        if attr == "weight":
            _update_sizes(module, tensor.shape)


def _update_sizes(module: nn.Module, shape: torch.Size) -> None:
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
            module.groups = shape[0]        # depthwise (MobileNet): one group per kept channel
        module.out_channels, module.in_channels = shape[0], shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = shape[0], shape[1]
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = shape[0]


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
    state = dict(stored["state_dict"])
    for name, q in stored["quantized"].items():
        scale = q["scale"].reshape(-1, *([1] * (q["codes"].dim() - 1)))
        state[f"{name}.weight"] = q["codes"].to(torch.float32) * scale
    if model_factory is None:
        config = load_config(folder / "config.yaml")
        model = build_model(config.model, tuple(manifest["input_shape"]), manifest["num_classes"])
    else:
        model = model_factory()
    fit_shapes(model, state)
    model.load_state_dict(state)
    return model.eval()
