"""Teacher-forced next-token loss and the shared Trainer's ``step_fn`` for the AR generator.

Each sample of a batch draws its task (``task_probs`` over joint / a2v / v2a) and, with probability
``cond_dropout``, loses its condition (class → null class; a2v / v2a conditioning tokens → mask ids) so
one model learns the conditional and unconditional predictions CFG mixes. Randomness comes from torch's
global RNG, which ``avtok.train.Trainer`` seeds and checkpoints (exact resume).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from avtok.generator.ar.config import AR_TASKS
from avtok.generator.ar.model import ARTransformer, build_sequences
from avtok.train.distributed import unwrap

__all__ = ["ARTrainConfig", "ar_loss", "ar_step", "token_dataset"]


@dataclass(kw_only=True)
class ARTrainConfig:
    task_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # joint, a2v, v2a
    cond_dropout: float = 0.1

    def __post_init__(self) -> None:
        if len(self.task_probs) != len(AR_TASKS) or min(self.task_probs) < 0 or sum(self.task_probs) <= 0:
            raise ValueError(
                f"ARTrainConfig.task_probs={self.task_probs}: need 3 non-negative weights "
                f"for {AR_TASKS} with a positive sum"
            )


def ar_loss(
    model: ARTransformer, indices: Tensor, labels: Tensor, tasks: list[str], drop: Tensor
) -> dict[str, Tensor]:
    """Mean cross-entropy over the generated tokens: ``{"loss", "loss/<task>" for tasks present}``."""
    cfg = unwrap(model).config  # under DDP (torchrun) the Trainer hands over the wrapper
    controls = torch.tensor([cfg.class_id(int(x)) for x in labels.tolist()], device=indices.device)
    seq = build_sequences(cfg, indices, controls, tasks, drop)
    logits = model(seq.ids, seq.modality, seq.positions)[:, :-1]  # (B, L - 1, K): position j predicts j + 1
    ce = F.cross_entropy(
        logits.transpose(1, 2).float(), seq.targets, ignore_index=-100, reduction="none"
    )  # (B, L - 1)
    valid = (seq.targets >= 0).float()
    out = {"loss": (ce * valid).sum() / valid.sum()}
    for task in sorted(set(tasks)):
        rows = torch.tensor([t == task for t in tasks], device=ce.device)
        out[f"loss/{task}"] = ((ce * valid)[rows].sum() / valid[rows].sum()).detach()
    return out


def ar_step(cfg: ARTrainConfig | None = None) -> Callable[[ARTransformer, dict], dict[str, Tensor]]:
    """The Trainer's ``step_fn``: batch ``{"indices": (B, Nv + Na) int64, "label": (B,) int64}``."""
    cfg = cfg or ARTrainConfig()
    probs = torch.tensor(cfg.task_probs, dtype=torch.float64)

    def step(model: ARTransformer, batch: dict) -> dict[str, Tensor]:
        indices, labels = batch["indices"], batch["label"]
        b = indices.shape[0]
        tasks = [AR_TASKS[i] for i in torch.multinomial(probs, b, replacement=True).tolist()]
        drop = torch.rand(b) < cfg.cond_dropout
        device = next(model.parameters()).device
        return ar_loss(model, indices.to(device), labels, tasks, drop)

    return step


def token_dataset(indices: Tensor, labels: list[int] | Tensor | None = None) -> list[dict[str, Tensor]]:
    """Items for ``ResumableLoader``: one ``{"indices": (N,) int64, "label": () int64}`` per clip."""
    labels = torch.zeros(len(indices), dtype=torch.long) if labels is None else torch.as_tensor(labels)
    return [{"indices": row.long(), "label": lab.long()} for row, lab in zip(indices, labels, strict=True)]
