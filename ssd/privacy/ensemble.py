"""K copies of one small network trained together as one vectorised ensemble.

The copies' parameters and buffers are stacked along a new leading dimension
(`torch.func.stack_module_state`) and one `vmap`-ed `functional_call` runs all K forward
and backward passes per step, each model on its own batch of its own training rows.
BatchNorm works unchanged: its running statistics are stacked buffers that vmap updates
in place, per model. SGD, Adam and AdamW act elementwise, so one optimiser over the
stacked tensors is K independent optimisers (the schedule's `make_optimizer` is reused).

Each model trains on its own subset of a shared pool (a K×N membership mask), cut into
shuffled consecutive batches exactly as `ssd.train.fit` cuts its data, so with subsets of
equal size (the audit's design) every model sees batches drawn from the same distribution
as the plain loop's: same sizes, same short last batch, same BatchNorm batch statistics.
This matters: retraining (the method) and the references must be one procedure, or the
attack scores the difference in procedure (a round-robin split into equal halves scored
AUC 0.69 for retrain against loop-trained retraining on Digits). Unequal subsets are padded
with repeats of the model's own rows carrying zero loss weight (they do enter BatchNorm).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from datasets.base import ImageData, device_generator, on_device, prepare
from ssd.schedules import Schedule


class Ensemble:
    """K models of one architecture as stacked parameters/buffers; `model(k)` unstacks one."""

    def __init__(self, factory: Callable[[], nn.Module], k: int, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        if k < 1:
            raise ValueError(f"an ensemble needs at least one model, got {k}")
        self.factory, self.k, self.device = factory, k, torch.device(device)
        torch.manual_seed(seed)
        models = [factory().to(self.device) for _ in range(k)]  # independent initialisations
        params, buffers = stack_module_state(models)
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        self.skeleton = copy.deepcopy(models[0]).to("meta")  # holds the graph, not the weights

    def _call(self, p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.skeleton, (p, b), (x,))

    def forward(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        """x: K×B×C×H×W (one batch per model) → K×B×classes logits."""
        self.skeleton.train(train)
        return vmap(self._call)(self.params, self.buffers, x)

    @torch.no_grad()
    def predict(self, data: ImageData, batch_size: int = 512) -> torch.Tensor:
        """The same images through every model in eval mode: K×N×classes float logits on the CPU
        (kept on the device until the last batch, then copied back once)."""
        self.skeleton.eval()
        run = vmap(self._call, in_dims=(0, 0, None))
        out = [run(self.params, self.buffers, x).float() for x, _ in data.batches(batch_size, device=self.device)]
        if not out:
            return torch.empty(self.k, 0, data.info.num_classes)
        return torch.cat(out, dim=1).cpu()

    def model(self, i: int) -> nn.Module:
        """Model `i` as an ordinary module (eval mode), e.g. to hand to an unlearning method."""
        m = self.factory().to(self.device)
        state = {name: t[i].detach().clone() for name, t in {**self.params, **self.buffers}.items()}
        m.load_state_dict(state)
        return m.eval()


def deal_batches(members: torch.Tensor, batch_size: int, generator: torch.Generator
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch's batches for every model: a list of (rows K×w, weights K×w), one per step.

    `members` is a K×N bool mask. Each model's rows are shuffled and cut into consecutive
    batches of `batch_size` (the last one shorter), exactly as the plain loop does. A step's
    width w is the largest batch any model has there; a model with fewer rows at that step
    repeats random rows of its own with weight 0. With equal subset sizes there is no
    padding at all. Every model needs the same number of batches per epoch. Everything is
    drawn and built on the generator's device (`members` is moved there): a step's batch
    is then used where it lies, and the host waits K + 1 times per epoch, not per step.
    """
    dev = generator.device
    members = on_device(members, dev)
    sizes = [int(s) for s in members.sum(1).tolist()]
    steps = -(-max(sizes) // batch_size)
    if min(sizes) <= (steps - 1) * batch_size:
        raise ValueError(f"subset sizes {min(sizes)}..{max(sizes)} need different numbers of batches of "
                         f"{batch_size}; an ensemble needs them equal")
    orders = []
    for i in range(members.shape[0]):
        own = members[i].nonzero().flatten()
        orders.append(own[torch.randperm(own.numel(), generator=generator, device=dev)])
    out = []
    if len(set(sizes)) == 1:  # the audit's equal subsets: no padding, so a step is one slice of all orders
        stacked, ones = torch.stack(orders), {}
        for s in range(steps):
            rows = stacked[:, s * batch_size:(s + 1) * batch_size]
            width = rows.shape[1]
            ones.setdefault(width, torch.ones(len(orders), width, device=dev))
            out.append((rows, ones[width]))
        return out
    for s in range(steps):
        chunks = [o[s * batch_size:(s + 1) * batch_size] for o in orders]
        width = max(c.numel() for c in chunks)
        rows = torch.empty(len(chunks), width, dtype=torch.long, device=dev)
        weights = torch.zeros(len(chunks), width, device=dev)
        for i, c in enumerate(chunks):
            fill = orders[i][torch.randint(0, orders[i].numel(), (width - c.numel(),), generator=generator,
                                           device=dev)]
            rows[i] = torch.cat([c, fill])
            weights[i, : c.numel()] = 1.0
        out.append((rows, weights))
    return out


def fit_ensemble(
    ens: Ensemble,
    data: ImageData,
    members: torch.Tensor,
    schedule: Schedule,
    *,
    seed: int = 0,
    progress: bool = False,
    desc: str = "shadows",
) -> list[float]:
    """Train model k of `ens` on the rows of `data` where `members[k]` is True, all at once.

    The schedule (optimiser, rate, warm-up, milestones, epochs, batch size, augmentation)
    is the one the plain loop uses. Returns the mean training loss per epoch (over models).
    """
    if members.shape != (ens.k, len(data)):
        raise ValueError(f"members must be {ens.k}×{len(data)}, got {tuple(members.shape)}")
    gen = device_generator(seed, ens.device)
    data = data.to(ens.device)
    opt = schedule.make_optimizer(list(ens.params.values()))
    history: list[float] = []
    for epoch in range(schedule.epochs):
        batches = deal_batches(members, schedule.batch_size, gen)
        steps = len(batches)
        total = torch.zeros((), device=ens.device)
        for step, (rows, weights) in enumerate(tqdm(batches, desc=f"{desc} {epoch + 1}/{schedule.epochs}",
                                                    leave=False, disable=not progress, file=sys.stderr)):
            lr = schedule.lr_at(epoch, step, steps)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = rows.flatten()
            x = prepare(data.images[idx], data.info, augment=schedule.augment, generator=gen)
            y = data.targets[idx]
            logits = ens.forward(x.view(ens.k, -1, *x.shape[1:]), train=True)
            ce = F.cross_entropy(logits.flatten(0, 1), y, reduction="none").view(ens.k, -1)
            per_model = (ce * weights).sum(1) / weights.sum(1)
            loss = per_model.sum()  # a sum: each model's gradient is its own loss's
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += per_model.detach().mean()
        history.append(float(total) / steps)
    return history
