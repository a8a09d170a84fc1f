"""Input checks shared by every metric: errors name the input and say how to fix it."""

from __future__ import annotations

import torch


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds NaN or Inf; metrics over such values are meaningless."""
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: {bad} NaN/Inf values; clean or clamp the input (torch.nan_to_num) first")


def check_same_shape(pred_name: str, pred: torch.Tensor, target_name: str, target: torch.Tensor) -> None:
    """Raise unless ``pred`` and ``target`` have identical shapes."""
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"{pred_name} has shape {tuple(pred.shape)} but {target_name} has shape {tuple(target.shape)}; "
            "crop or resample one of them so both match"
        )


def check_min_ndim(name: str, x: torch.Tensor, ndim: int, layout: str) -> None:
    """Raise unless ``x`` has at least ``ndim`` dims (``layout`` names them, e.g. '(..., H, W, C)')."""
    if x.ndim < ndim:
        raise ValueError(f"{name}: expected layout {layout} (>= {ndim} dims), got shape {tuple(x.shape)}")


def check_pair(pred_name: str, pred: torch.Tensor, target_name: str, target: torch.Tensor) -> None:
    """Shape match plus finiteness on both inputs."""
    check_same_shape(pred_name, pred, target_name, target)
    check_finite(pred_name, pred)
    check_finite(target_name, target)
