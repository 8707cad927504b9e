"""The parts of one candidate's pruning method, built from the study context.

Schedules (``trainers.schedules``) combine these: the dense starting point, the ``Pruner``, the
regularisation penalty, the distillation term and the fine-tune settings. Things that are the same
for every trial of a study (the channel coupling of the architecture, the distillation teacher,
the dense training cost) are built once and cached in ``context.extras``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.data import DataLoader

from spaces.candidate import Candidate
from trainers.costs.flops import dense_flops
from trainers.costs.meters import make_meter
from trainers.costs.model_basis import shape_key
from trainers.discovery import discover
from trainers.distillation import Distillation
from trainers.eval_context import EvalContext
from trainers.pruning.granularity import PruneMasks
from trainers.pruning.pruner import Pruner
from trainers.pruning.structured import ChannelCoupling
from trainers.regularization import Penalty, penalty_kind
from trainers.train_settings import TrainSettings
from trainers.training import iterate_batches, train_epochs

# Backward + forward of a training step cost about three forward passes (the usual convention).
TRAIN_FLOPS_PER_FORWARD = 3


def dense_model(context: EvalContext) -> nn.Module:
    """A fresh copy of the trained dense reference on the context's device."""
    model = context.model_factory()
    model.load_state_dict(context.dense_state)
    return model.to(context.device)


def seeded_dense_model(context: EvalContext, seed: int) -> nn.Module:
    """``torch.manual_seed(seed)`` then ``dense_model(context)``: the same weights and the same
    random state after it, but from the second call on a copy of a cached template instead of a
    fresh build. A fresh build initialises every weight (random draws) only to overwrite them:
    about 80 ms for a ResNet-18 and 0.57 s for a ViT-B/16 against 8 ms and 0.16 s for a copy
    (CPU, one thread), paid by every candidate, screened-out ones too. The random state the
    build leaves behind depends only on the seed, so it is cached with the template (kept on the
    host). A model that cannot be copied is built each time."""
    cached = context.extras.get("dense_template")
    torch.manual_seed(seed)   # every generator; then those a build draws from, as it left them
    if cached is not None and cached[0] == seed and cached[1] is not None:
        set_rng_state(cached[2])
        return copy.deepcopy(cached[1]).to(context.device)
    model = dense_model(context)
    if cached is None or cached[0] != seed:
        try:   # on the host: a factory that builds on the device gets no second copy there
            template = copy.deepcopy(model).to("cpu")
        except Exception:   # noqa: BLE001 -- a model deepcopy cannot copy: built each time
            template = None
        context.extras["dense_template"] = (seed, template, rng_state())
    return model


def example_input(context: EvalContext) -> torch.Tensor:
    return torch.zeros((1, *context.data.input_shape), device=context.device)


def channel_coupling(context: EvalContext) -> ChannelCoupling:
    """The architecture's channel dependencies (traced once per context; building the probe
    leaves the random state alone, so whether it was cached changes no trial)."""
    if "channel_coupling" not in context.extras:
        with torch.random.fork_rng(devices=[]):
            probe = context.model_factory().to(context.device)
        context.extras["channel_coupling"] = ChannelCoupling(probe, example_input(context))
    return context.extras["channel_coupling"]


def make_pruner(candidate: Candidate, context: EvalContext) -> Pruner:
    """A ``Pruner`` whose data-driven criteria read the first ``score_batches`` training batches."""
    def batches():
        generator = torch.Generator().manual_seed(candidate.seed)
        stream = iterate_batches(context.data.train, context.batch_size, context.device,
                                 shuffle=True, generator=generator)
        for i, batch in enumerate(stream):
            if i >= context.pruning.score_batches:
                break
            yield batch

    coupling = channel_coupling(context) if candidate.granularity == "channel" else None
    return Pruner(candidate, input_shape=tuple(context.data.input_shape),
                  settings=context.pruning, batches=batches, coupling=coupling,
                  loss_fn=context.loss_fn)


@dataclass
class PreparedCandidate:
    """A candidate pruned once, before anything looks at it.

    The trained dense reference with the candidate's masks and quantizers attached (its one-shot
    target state), the masks, and the random state right after pruning (where one-shot training
    goes on from, as if it had pruned the model itself). Validity, the costs early stopping
    places the candidate with, and one-shot training share it: one build, one prune, a
    criterion's gradients collected once. ``take`` hands the model to training (once).
    """

    candidate: Candidate
    model: nn.Module
    masks: PruneMasks
    rng: tuple = field(repr=False, default=())
    taken: bool = False

    def take(self) -> tuple[nn.Module, PruneMasks]:
        """The pruned model and its masks, the random state set to where pruning left it."""
        if self.taken:
            raise RuntimeError("a prepared candidate trains once; prepare it again")
        self.taken = True
        set_rng_state(self.rng)
        return self.model, self.masks


def prepare_candidate(candidate: Candidate, context: EvalContext) -> PreparedCandidate:
    """Seed, copy the dense reference and prune it with the candidate's criterion (see
    ``PreparedCandidate``); exactly what one-shot training starts with."""
    pruner = make_pruner(candidate, context)
    model = seeded_dense_model(context, candidate.seed)
    masks = pruner.step(model)
    return PreparedCandidate(candidate, model, masks, rng_state())


def previews_final(candidate: Candidate) -> bool:
    """Whether the candidate's accuracy part-way (pruned, before or during fine-tuning) previews
    its final one: the ``oneshot`` schedule, whose fine-tuning starts from the pruned model."""
    return candidate.schedule == "oneshot"


def rng_state() -> tuple:
    """The global random state (CPU, and every CUDA device already in use)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def set_rng_state(state: tuple) -> None:
    if not state:
        return
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def make_penalty(candidate: Candidate) -> Penalty | None:
    """The candidate's regularisation (``options['reg']`` > 0) over the layers it prunes."""
    strength = float(candidate.options.get("reg", 0.0))
    pruned = [name for name, s in candidate.sparsity.items() if s > 0]
    if strength <= 0 or not pruned:
        return None
    return Penalty(penalty_kind(candidate.granularity), strength, pruned)


def make_distillation(candidate: Candidate, context: EvalContext) -> Distillation | None:
    """Distillation from the dense reference when ``options['distill']`` is on."""
    if not candidate.options.get("distill", False):
        return None
    if "teacher" not in context.extras:
        context.extras["teacher"] = dense_model(context)
    settings = context.pruning
    return Distillation(context.extras["teacher"], settings.distill_temperature,
                        settings.distill_weight)


def finetune_settings(candidate: Candidate, context: EvalContext) -> TrainSettings:
    """The fine-tune phase, with the candidate's epochs when the space searches them."""
    epochs = candidate.options.get("finetune_epochs")
    return context.finetune if epochs is None else replace(context.finetune, epochs=int(epochs))


def training_epochs(candidate: Candidate, context: EvalContext) -> int:
    """Epochs a candidate trains in full (what ``search.budget_epochs`` charges): its fine-tune
    epochs, plus the penalised dense epochs of ``oneshot`` with regularisation; the from-scratch
    epochs of ``during_training``."""
    if candidate.schedule == "during_training":
        return int(from_scratch_settings(context).epochs)
    epochs = int(finetune_settings(candidate, context).epochs)
    if candidate.schedule == "oneshot" and make_penalty(candidate) is not None:
        epochs += context.pruning.reg_epochs
    return epochs


def from_scratch_settings(context: EvalContext) -> TrainSettings:
    """Settings of ``during_training``: the dense reference's, over ``pruning.during_epochs``."""
    base = context.dense_train or context.finetune
    epochs = context.pruning.during_epochs or base.epochs
    return replace(base, epochs=epochs)


def forward_flops(model: nn.Module, context: EvalContext) -> float:
    """FLOPs of one forward pass of one sample, as the model physically runs (masks ignored):
    its layers plus the weight-free products (attention); counted once per distinct
    ``shape_key`` in this context (the count traces the model)."""
    cache = context.extras.setdefault("forward_flops", {})
    key = shape_key(model)
    if key not in cache:
        found = discover(model, tuple(context.data.input_shape))
        cache[key] = float(dense_flops(found.layers) + found.free_flops)
    return cache[key]


def train_samples(context: EvalContext) -> int:
    """Samples in the training split (a user's ``DataLoader`` counts its data set)."""
    train = context.data.train
    return len(train.dataset) if isinstance(train, DataLoader) else len(train)


def train_flops(model: nn.Module, context: EvalContext, epochs: int) -> float:
    """Analytic training FLOPs of ``epochs`` epochs of ``model`` over the training split."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops(model, context) * train_samples(context) * epochs


def teacher_flops(candidate: Candidate, context: EvalContext, epochs: int) -> float:
    """The distillation teacher's training FLOPs over ``epochs`` epochs: one forward pass of the
    dense reference per sample-step (no backward), 0 without distillation."""
    if not candidate.options.get("distill", False):
        return 0.0
    make_distillation(candidate, context)    # the teacher is built once per context
    teacher = context.extras["teacher"]
    return forward_flops(teacher, context) * train_samples(context) * epochs


def steps_per_epoch(context: EvalContext) -> int:
    train = context.data.train
    if isinstance(train, DataLoader):
        return len(train)
    return math.ceil(len(train) / context.batch_size)


def dense_training_cost(context: EvalContext, settings: TrainSettings, seed: int) -> dict:
    """Measured time and energy of training the dense model from scratch for ``settings.epochs``
    (the comparison point of ``during_training``); measured once per context and epochs."""
    cache = context.extras.setdefault("dense_training_cost", {})
    key = (settings.epochs, seed)
    if key not in cache:
        torch.manual_seed(seed)
        model = context.model_factory().to(context.device)
        meter = make_meter(context.energy_meter, context.watts_per_core, device=context.device,
                           powercap_root=context.powercap_root)
        meter.start()
        train_epochs(model, context.data.train, settings, batch_size=context.batch_size,
                     device=context.device, seed=seed, loss_fn=context.loss_fn)
        reading = meter.stop()
        cache[key] = {"seconds": reading.seconds, "energy_j": reading.joules,
                      "source": reading.source,
                      "flops": train_flops(model, context, settings.epochs)}
    return cache[key]
