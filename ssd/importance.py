"""Parameter importances for SSD: the diagonal (empirical) Fisher information and LFSSD's variant.

Three modes, all returning a dict shaped like `named_parameters()` (float32, on the
parameters' device):

* ``batch`` — the authors' estimate (their `ParameterPerturber.calc_importance`): per
  minibatch, the gradient of the batch-mean cross-entropy, squared; summed, then divided
  by the number of batches. It depends on the batch size and on how batches are composed
  (see :func:`paper_order`), which is why the order is part of every result and cache key.
* ``sample`` — the exact diagonal empirical Fisher, mean over samples of squared
  per-sample gradients, vectorised with ``torch.func`` (vmap over grad, in chunks).
* ``lf`` — LFSSD (label-free): the loss is the batch mean of the squared L2 norm of
  the logits and |grad| is accumulated instead of grad².

The model's train/eval flags and `requires_grad` flags are restored afterwards, its
weights and `.grad` fields are never touched (gradients come from `autograd.grad`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from datasets.base import ImageData
from ssd.precision import importance_scope
from ssd.utils import evaluation_state, model_device

Mode = Literal["batch", "sample", "lf"]
MODES: tuple[str, ...] = ("batch", "sample", "lf")
ORDERS: tuple[str, ...] = ("paper", "shuffled")
NameFilter = Callable[[str], bool]


def paper_order(data: ImageData, forget: ImageData | None = None, *, task: str = "full_class",
                seed: int = 0) -> torch.Tensor:
    """Row order of the authors' D loader, `ConcatDataset((retain, forget))` unshuffled, per task.

    * full_class: retain class by class (their `get_classwise_ds` keys on the label; within a
      class, dataset order), then the forget rows in data order;
    * sub_class: retain *fine* class by fine class (the sub-class file's `get_classwise_ds`
      keys on the fine label), then the forget rows — nearly every batch holds one fine class;
    * random: retain, then forget, each in the order of one seeded permutation of the rows
      (standing in for their `random_split`, whose index order their retain/forget lists keep).

    Rows of `data` whose original index is in `forget` are the forget rows.
    """
    is_forget = torch.zeros(len(data), dtype=torch.bool)
    if forget is not None and len(forget):
        assert data.indices is not None and forget.indices is not None
        is_forget = torch.isin(data.indices.cpu(), forget.indices.cpu())
    if task == "random":
        perm = shuffled_order(len(data), seed)
        in_forget = is_forget[perm]
        return torch.cat([perm[~in_forget], perm[in_forget]])
    if task == "sub_class":
        if data.fine_targets is None:
            raise ValueError(f"sub_class paper order needs fine labels; {data.info.name} has none")
        keys = data.fine_targets.cpu()
    elif task == "full_class":
        keys = data.targets.cpu()
    else:
        raise ValueError(f"unknown task {task!r} for the paper order")
    keep = (~is_forget).nonzero().flatten()
    keep = keep[torch.sort(keys[keep], stable=True).indices]
    return torch.cat([keep, is_forget.nonzero().flatten()])


def order_within(d_order: torch.Tensor, data: ImageData, subset: ImageData) -> torch.Tensor:
    """Row positions of `subset` in the order its samples appear in `data` visited by `d_order`.

    Why: the authors' Df loader and the forget part of their D visit the forget samples in
    the same order (one list feeds both), so Df's order is read off D's.
    """
    assert data.indices is not None and subset.indices is not None
    visited = data.indices.cpu()[d_order.cpu()]
    sub = subset.indices.cpu()
    visited = visited[torch.isin(visited, sub)]
    sorter = sub.argsort()
    return sorter[torch.searchsorted(sub[sorter], visited)]


def shuffled_order(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation: batches mix classes, as a shuffled DataLoader's would."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def make_order(order: str, data: ImageData, seed: int, forget: ImageData | None = None, *,
               task: str = "full_class") -> torch.Tensor:
    """Row order for `order` in ORDERS ("paper": the authors' order for `task`, see paper_order)."""
    if order == "paper":
        return paper_order(data, forget, task=task, seed=seed)
    if order == "shuffled":
        return shuffled_order(len(data), seed)
    raise ValueError(f"unknown order {order!r}; choose one of {ORDERS}")


def ordered_batches(
    data: ImageData,
    batch_size: int,
    order: torch.Tensor | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised `(x, y)` batches in `order` (ImageData.batches), x cast to `dtype` when given
    (a half-precision model's; float32 otherwise)."""
    for x, y in data.batches(batch_size, order=order, device=device):
        yield (x if dtype is None or dtype == x.dtype else x.to(dtype)), y


def compute_importances(
    model: nn.Module,
    data: ImageData,
    *,
    mode: str = "batch",
    batch_size: int = 64,
    order_indices: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    chunk_size: int = 128,
    only: NameFilter | None = None,
) -> dict[str, torch.Tensor]:
    """Importance of every parameter on `data` (see the module docstring for the modes).

    `order_indices` are row positions of `data` giving the batch order (batch/lf modes
    depend on it). `device` is where batches go; it must hold the model (default: the
    model's device). `only` restricts the work to parameters whose name it accepts;
    the rest get zeros (why: a filtered SSD run need not pay for gradients it ignores).
    `chunk_size` bounds the per-sample gradients held at once in sample mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown importance mode {mode!r}; choose one of {MODES}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError("batch_size and chunk_size must be positive")
    dev = torch.device(device) if device is not None else model_device(model)
    named = list(model.named_parameters())
    imps = {n: torch.zeros(p.shape, dtype=torch.float32, device=p.device) for n, p in named}
    wanted = [(n, p) for n, p in named if only is None or only(n)]
    if not wanted or len(data) == 0:
        return imps
    with evaluation_state(model), importance_scope(dev):  # float32 inside a bf16 run (docs/precision.md)
        if mode == "sample":
            _sample_fisher(model, data, wanted, imps, chunk_size, order_indices, dev)
        else:
            _batch_importance(model, data, wanted, imps, mode, batch_size, order_indices, dev)
    return imps


def _batch_importance(
    model: nn.Module,
    data: ImageData,
    wanted: list[tuple[str, nn.Parameter]],
    imps: dict[str, torch.Tensor],
    mode: str,
    batch_size: int,
    order: torch.Tensor | None,
    device: torch.device,
) -> None:
    """The authors' estimator (mode "batch") and LFSSD's (mode "lf"), accumulated in place."""
    wanted_ids = {id(p) for _, p in wanted}
    for p in model.parameters():  # no graph for parameters whose importance is not asked for
        p.requires_grad_(id(p) in wanted_ids)
    params = [p for _, p in wanted]
    acc = [imps[n] for n, _ in wanted]
    n_batches = 0
    with torch.enable_grad():
        for x, y in ordered_batches(data, batch_size, order, device, params[0].dtype):
            out = model(x)
            if mode == "lf":
                loss = out.float().pow(2).sum(dim=1).mean()
            else:
                loss = F.cross_entropy(out.float(), y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            pairs = [(a, g.float()) for a, g in zip(acc, grads, strict=True) if g is not None]
            if pairs:
                targets, gs = [a for a, _ in pairs], [g for _, g in pairs]
                if mode == "lf":
                    torch._foreach_add_(targets, torch._foreach_abs(gs))
                else:
                    torch._foreach_addcmul_(targets, gs, gs)
            n_batches += 1
    torch._foreach_div_(acc, float(n_batches))


def _sample_fisher(
    model: nn.Module,
    data: ImageData,
    wanted: list[tuple[str, nn.Parameter]],
    imps: dict[str, torch.Tensor],
    chunk_size: int,
    order: torch.Tensor | None,
    device: torch.device,
) -> None:
    """Mean over samples of squared per-sample gradients, one vmapped chunk at a time.

    Only the wanted parameters are differentiated (the rest are passed as constants),
    per-sample gradients live for one chunk and are squared in place into the sums.
    """
    names = [n for n, _ in wanted]
    wanted_set = set(names)
    diff = {n: p.detach() for n, p in wanted}
    const = {n: p.detach() for n, p in model.named_parameters() if n not in wanted_set}
    const.update({n: b.detach() for n, b in model.named_buffers()})

    def loss_one(ps: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (ps, const), (x.unsqueeze(0),), tie_weights=False, strict=False)
        return F.cross_entropy(out.float(), y.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    acc = [imps[n] for n in names]
    for x, y in ordered_batches(data, chunk_size, order, device, wanted[0][1].dtype):
        gs = per_sample(diff, x, y)
        sums = []
        for n in names:
            g = gs[n].float()
            if g.is_contiguous():  # square in place: no second copy of the chunk's gradients
                sums.append(g.mul_(g).sum(dim=0))
            else:  # e.g. an unused parameter's expanded zeros, which cannot be written in place
                sums.append((g * g).sum(dim=0))
        torch._foreach_add_(acc, sums)
        del gs, sums
    torch._foreach_div_(acc, float(len(data)))
