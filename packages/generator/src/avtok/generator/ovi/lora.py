"""LoRA fine-tuning of the twin DiT through ``peft``: which linears get adapters, save / load / merge.

Target groups (per tower, every block): ``self`` = self-attention q/k/v/o; ``cross`` = text
cross-attention q/k/v/o (q and o are shared with the fusion path); ``fusion`` = the cross-modal key/value
projections ``k_fusion`` / ``v_fusion``; ``ffn`` = both FFN linears. ``towers`` limits the adapters to
one tower (the other stays exactly the base model). Adapters are saved with peft's own format
(``adapter_config.json`` + ``adapter_model.safetensors``) and load back onto the same base model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from avtok.generator.ovi.twin_dit import TwinDiT

__all__ = ["LORA_TARGETS", "LoraSettings", "add_lora", "load_lora", "lora_pattern", "merge_lora"]

LORA_TARGETS = {
    "self": r"self_attn\.(q|k|v|o)",
    "cross": r"cross_attn\.(q|k|v|o)",
    "fusion": r"cross_attn\.(k_fusion|v_fusion)",
    "ffn": r"ffn\.(fc1|fc2)",
}
TOWERS = ("video", "audio")


@dataclass(kw_only=True)
class LoraSettings:
    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: Sequence[str] = field(default_factory=lambda: ("self", "cross", "fusion"))
    towers: Sequence[str] = TOWERS

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if t not in LORA_TARGETS] + [t for t in self.towers if t not in TOWERS]
        if bad or not self.targets or not self.towers or self.rank < 1:
            raise ValueError(f"LoraSettings: targets {list(self.targets)} / towers {list(self.towers)} / "
                             f"rank {self.rank}: choose targets from {sorted(LORA_TARGETS)}, towers from "
                             f"{TOWERS}, rank >= 1")


def lora_pattern(settings: LoraSettings) -> str:
    """The regex (full match on module names) of the linears that get adapters."""
    towers = "|".join(settings.towers)
    layers = "|".join(LORA_TARGETS[t] for t in settings.targets)
    return rf"({towers})\.blocks\.\d+\.({layers})"


def add_lora(model: TwinDiT, settings: LoraSettings | None = None) -> nn.Module:
    """Wrap ``model`` in a peft model with fresh adapters; only adapter weights train."""
    from peft import LoraConfig, get_peft_model

    s = settings or LoraSettings()
    cfg = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=lora_pattern(s))
    return get_peft_model(model, cfg)


def load_lora(model: TwinDiT, directory: str | Path, *, trainable: bool = False) -> nn.Module:
    """Put the adapters saved in ``directory`` (``peft_model.save_pretrained``) onto the base ``model``."""
    from peft import PeftModel

    src = Path(directory)
    if not (src / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{src}/adapter_config.json: missing; pass a folder written by "
                                "`avtok-generator train --lora-rank N` (its adapter/ folder)")
    return PeftModel.from_pretrained(model, str(src), is_trainable=trainable)


def merge_lora(model: nn.Module) -> TwinDiT:
    """Fold the adapters into the base weights and return the plain TwinDiT."""
    return model.merge_and_unload()
