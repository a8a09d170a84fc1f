"""The tokenizer model families the staged-run driver knows, as an explicit registry.

A family is a module (its ``recipe``) that satisfies :class:`ModelFamily`: it prepares its data once per run,
builds its model for a stage, gives the driver that stage's hooks, scores held-out clips, and names the
modules FSDP2 shards. Adding a family = writing such a recipe and adding it to :data:`FAMILIES`.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from torch import nn

from avtok.media_io import AVClip
from avtok.tokenizer.av import recipe as av_recipe
from avtok.tokenizer.curriculum import Stage
from avtok.tokenizer.recipes import RunConfig, StageHooks
from avtok.tokenizer.visual import recipe as visual_recipe

if TYPE_CHECKING:  # polars only builds the result tables (imported there)
    import polars as pl

__all__ = ["FAMILIES", "ModelFamily", "get_family"]


@runtime_checkable
class ModelFamily(Protocol):
    """What the driver (``avtok.tokenizer.runner``) needs from a model family's recipe module."""

    SHARD_MODULES: tuple[type[nn.Module], ...]  # FSDP2 units under --strategy fsdp2

    def prepare(self, cfg: RunConfig) -> Any: ...  # the run's data context (train / held-out clips)

    def build(self, cfg: RunConfig, ctx: Any, stage: Stage) -> nn.Module: ...

    def hooks(self, cfg: RunConfig, ctx: Any, model: nn.Module, stage: Stage) -> StageHooks: ...

    def heldout_report(self, model: nn.Module, clips: list[AVClip], *,
                       frame_stride: int = 1) -> pl.DataFrame: ...


FAMILIES: dict[str, ModuleType] = {"visual": visual_recipe, "av": av_recipe}


def get_family(name: str) -> ModelFamily:
    """The recipe of family ``name`` (``visual`` or ``av``); a clear error for anything else."""
    if name not in FAMILIES:
        raise ValueError(f"unknown tokenizer family {name!r}; known: {sorted(FAMILIES)}")
    return cast(ModelFamily, FAMILIES[name])
