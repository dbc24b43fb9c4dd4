"""A plain, independent re-implementation of the SSD authors' loaders and `ParameterPerturber`.

Written from reading if-loops/selective-synaptic-dampening (src/forget_full_class_main.py,
forget_subclass_main.py, forget_random_main.py, forget_*_strategies.py, ssd.py), without
any of the harness's ordering or importance code, so that `protocol="authors"` can be
checked against it. Items are `(x, fine label, coarse label)` tuples in dataset order, as
their `Cifar20.__getitem__` returns (for a dataset without fine labels the middle element
is the label, standing in for their empty tensor), and loaders are torch `DataLoader`s
over Python lists, as theirs. Only the normalised image tensors come from the harness
(`prepare`): the check is about loaders and arithmetic, so both sides get the same tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader

from datasets.base import ImageData, prepare

Item = tuple[torch.Tensor, int, int]


def items_of(data: ImageData) -> list[Item]:
    """The dataset as their `__getitem__` yields it: (normalised x, fine label, coarse label)."""
    x = prepare(data.images.cpu(), data.info)
    coarse = data.targets.cpu().tolist()
    fine = data.fine_targets.cpu().tolist() if data.fine_targets is not None else coarse
    return [(x[i], fine[i], coarse[i]) for i in range(len(data))]


def get_classwise_ds(items: list[Item], num_classes: int, key: int) -> dict[int, list[Item]]:
    """Their `get_classwise_ds`: key 2 (`clabel`) in the full-class file, key 1 (`label`,
    the fine class) in the sub-class file."""
    out: dict[int, list[Item]] = {i: [] for i in range(num_classes)}
    for item in items:
        out[item[key]].append(item)
    return out


def build_retain_forget_sets(classwise: dict[int, list[Item]], num_classes: int,
                             forget_class: int) -> tuple[list[Item], list[Item]]:
    """Their `build_retain_forget_sets` (train part): (retain_train, forget_train)."""
    forget, retain = [], []
    for cls in range(num_classes):
        if cls == forget_class:
            forget.extend(classwise[cls])
    for cls in range(num_classes):
        if cls != forget_class:
            retain.extend(classwise[cls])
    return retain, forget


def random_split_sets(items: list[Item], forget_rows: set[int], permutation: list[int]) -> tuple[list[Item], list[Item]]:
    """`random_split` keeps its permutation's index order in both parts: (retain, forget)."""
    forget = [items[i] for i in permutation if i in forget_rows]
    retain = [items[i] for i in permutation if i not in forget_rows]
    return retain, forget


def authors_loaders(retain: list[Item], forget: list[Item], batch_size: int) -> tuple[DataLoader, DataLoader]:
    """(forget_train_dl, full_train_dl) as their mains build them (neither shuffles)."""
    forget_dl = DataLoader(forget, batch_size)
    full_dl = DataLoader(ConcatDataset((retain, forget)), batch_size=batch_size)
    return forget_dl, full_dl


class ParameterPerturber:
    """Their ssd.py `ParameterPerturber`: calc_importance and modify_weight (λ, α; exponent and
    lower_bound 1, as every main passes)."""

    def __init__(self, model: nn.Module, alpha: float, lam: float) -> None:
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.1)
        self.alpha, self.lam, self.exponent, self.lower_bound = alpha, lam, 1, 1

    def calc_importance(self, dataloader: DataLoader) -> dict[str, torch.Tensor]:
        importances = {k: torch.zeros_like(p) for k, p in self.model.named_parameters()}
        for x, _, y in dataloader:
            self.opt.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            for (_, p), imp in zip(self.model.named_parameters(), importances.values(), strict=True):
                if p.grad is not None:
                    imp.data += p.grad.data.clone().pow(2)
        for imp in importances.values():
            imp.data /= float(len(dataloader))
        return importances

    def modify_weight(self, original: dict[str, torch.Tensor], forget: dict[str, torch.Tensor]) -> int:
        """Dampen in place; returns the number of selected weights."""
        selected = 0
        with torch.no_grad():
            for (_, p), oimp, fimp in zip(self.model.named_parameters(), original.values(), forget.values(),
                                          strict=True):
                locations = torch.where(fimp > oimp.mul(self.alpha))
                weight = oimp.mul(self.lam).div(fimp).pow(self.exponent)
                update = weight[locations]
                update[torch.where(update > self.lower_bound)] = self.lower_bound
                p[locations] = p[locations].mul(update)
                selected += int(update.numel())
        return selected


def authors_ssd(model: nn.Module, forget_dl: DataLoader, full_dl: DataLoader, alpha: float,
                lam: float = 1.0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """Their `ssd_tuning` body on `model` (dampened in place): (imp_D, imp_Df, selected)."""
    pdr = ParameterPerturber(model, alpha, lam)
    model.eval()
    imp_f = pdr.calc_importance(forget_dl)
    imp_d = pdr.calc_importance(full_dl)
    selected = pdr.modify_weight(imp_d, imp_f)
    return imp_d, imp_f, selected


def authors_task_loaders(task: str, train: ImageData, forget: ImageData, num_classes: int,
                         forget_class: int | None, seed: int, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """The authors' (forget_train_dl, full_train_dl) for a task, on `train`'s rows.

    full_class: classwise by coarse label; sub_class: classwise by fine label over the fine
    classes; random: a permutation `randperm(len(train), seed)` standing in for random_split.
    """
    items = items_of(train)
    if task == "random":
        assert train.indices is not None and forget.indices is not None
        in_forget = set(torch.isin(train.indices.cpu(), forget.indices.cpu()).nonzero().flatten().tolist())
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
        retain, forget_items = random_split_sets(items, in_forget, perm)
    else:
        key = 1 if task == "sub_class" else 2
        assert forget_class is not None
        retain, forget_items = build_retain_forget_sets(get_classwise_ds(items, num_classes, key), num_classes,
                                                        forget_class)
    return authors_loaders(retain, forget_items, batch_size)
