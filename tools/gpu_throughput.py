"""bf16 training-step throughput of each model family at a realistic size (a part of tools/gpu_check.py).

One row per family: AdamW step with bf16 autocast and fp32 master weights, on synthetic inputs:

    visual-base   the AToken ``base`` visual tokenizer on 256x256 images (256 patches per image)
    av-paper      the AVTok ``paper`` AV tokenizer: 16x128x128 video + 80x384 mel (1152 latent tokens)
    twin-dit      a few ``ovi-11b`` blocks on Ovi's 5 s latents (31x44x44x48 video, 157x20 audio, 512x4096
                  text)
    ar-paper      the ``paper`` AR generator over 768 + 384 tokens

FLOPs of one step come from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention, forward
and backward), so the achieved TFLOP/s needs no hand-written formula; it is given as a fraction of the
card's dense bf16 peak. ``--dry-run`` runs each family's tiny preset for one step on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from gpu_check_env import spec_peak_bf16
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

TWIN_DIT_BLOCKS = 3  # "a few" ovi-11b blocks: ~1.4B parameters with AdamW state fit an 80 GB card


@dataclass(kw_only=True)
class Family:
    name: str
    preset: str
    shape: str  # the input, in words
    batch: int
    tokens: int  # tokens per step (see the module docstring for what counts as a token)
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.device], dict]
    loss: Callable[[nn.Module, dict], Tensor]


def _l1(a: Tensor, b: Tensor) -> Tensor:
    return (a.float() - b.float()).abs().mean()


def _visual(dry: bool) -> Family:
    from avtok.tokenizer.visual.config import resolve_config
    from avtok.tokenizer.visual.model import build_tokenizer

    preset, side, batch = ("tiny", 64, 2) if dry else ("base", 256, 16)
    cfg = resolve_config(preset)

    def loss(model, x):
        _, recs = model(list(x["images"]))
        return torch.stack([_l1(r, i) for r, i in zip(recs, x["images"], strict=True)]).mean()

    return Family(
        name="visual",
        preset=preset,
        shape=f"{batch} images {side}x{side}",
        batch=batch,
        tokens=batch * (side // 16) ** 2,
        build=lambda: build_tokenizer(cfg),
        inputs=lambda d: {"images": torch.rand(batch, side, side, 3, device=d) * 2 - 1},
        loss=loss,
    )


def _av(dry: bool) -> Family:
    from avtok.tokenizer.av.config import resolve_av_config
    from avtok.tokenizer.av.model import build_av_tokenizer

    preset, batch = ("tiny", 2) if dry else ("paper", 8)
    c = resolve_av_config(preset)

    def inputs(d):
        return {
            "video": torch.rand(batch, c.frames, c.height, c.width, 3, device=d) * 2 - 1,
            "mel": torch.rand(batch, c.n_mels, c.mel_frames, device=d) * 2 - 1,
        }

    def loss(model, x):
        _, rec = model(video=x["video"], mel=x["mel"])
        return _l1(rec.video, x["video"]) + _l1(rec.mel, x["mel"])

    return Family(
        name="av",
        preset=preset,
        shape=f"{batch} x ({c.frames}x{c.height}x{c.width} video + {c.n_mels}x{c.mel_frames} mel)",
        batch=batch,
        tokens=batch * c.num_tokens,
        build=lambda: build_av_tokenizer(preset),
        inputs=inputs,
        loss=loss,
    )


def _twin_dit(dry: bool) -> Family:
    from avtok.generator.ovi.config import build_config
    from avtok.generator.ovi.twin_dit import TwinDiT

    if dry:
        cfg, batch, (f, h, w), la, lt = build_config("tiny"), 2, (4, 4, 4), 10, 5
    else:
        cfg, batch, (f, h, w), la, lt = (
            build_config("ovi-11b", depth=TWIN_DIT_BLOCKS),
            1,
            (31, 44, 44),
            157,
            512,
        )
    pt, ph, pw = cfg.video_patch

    def inputs(d):
        return {
            "video": torch.randn(batch, f, h, w, cfg.video_channels, device=d),
            "audio": torch.randn(batch, la, cfg.audio_channels, device=d),
            "t": torch.rand(batch, device=d),
            "text": torch.randn(batch, lt, cfg.text_dim, device=d),
        }

    def loss(model, x):
        out = model(x["video"], x["audio"], x["t"], x["t"], x["text"])
        return out.video.float().square().mean() + out.audio.float().square().mean()

    name = f"{cfg.name} x{cfg.depth} blocks"
    return Family(
        name="twin-dit",
        preset=name,
        shape=f"{batch} x ({f}x{h}x{w}x{cfg.video_channels} video, "
        f"{la}x{cfg.audio_channels} audio, {lt}x{cfg.text_dim} text)",
        batch=batch,
        tokens=batch * (f // pt * (h // ph) * (w // pw) + la),
        build=lambda: TwinDiT(cfg),
        inputs=inputs,
        loss=loss,
    )


def _ar(dry: bool) -> Family:
    from avtok.generator.ar.config import build_ar_config
    from avtok.generator.ar.model import ARTransformer
    from avtok.generator.ar.train import ar_step

    preset, batch = ("tiny", 2) if dry else ("paper", 8)
    cfg = build_ar_config(preset)
    step = ar_step()

    def inputs(d):
        return {
            "indices": torch.randint(0, cfg.codebook_size, (batch, cfg.num_tokens), device=d),
            "label": torch.randint(0, cfg.num_classes, (batch,)),
        }

    return Family(
        name="ar",
        preset=preset,
        shape=f"{batch} x {cfg.num_tokens} tokens",
        batch=batch,
        tokens=batch * (cfg.num_tokens + 1),
        build=lambda: ARTransformer(cfg),
        inputs=inputs,
        loss=lambda model, x: step(model, x)["loss"],
    )


FAMILIES = (_visual, _av, _twin_dit, _ar)


def _step(fam: Family, model: nn.Module, opt: torch.optim.Optimizer, x: dict, device: torch.device) -> float:
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    with amp:
        loss = fam.loss(model, x)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fam: Family, device: torch.device, *, warmup: int, steps: int, peak: float | None) -> dict:
    torch.manual_seed(0)
    with device:
        model = fam.build().to(device).train()  # built on the device (buffers too)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    x = fam.inputs(device)
    for _ in range(warmup):
        _step(fam, model, opt, x, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    losses = [_step(fam, model, opt, x, device) for _ in range(steps)]
    _sync(device)
    sec = (time.perf_counter() - start) / steps
    with FlopCounterMode(display=False) as counter:  # one more step, counted (not timed)
        _step(fam, model, opt, x, device)
    flops = counter.get_total_flops()
    row = {
        "family": fam.name,
        "preset": fam.preset,
        "input": fam.shape,
        "params_m": round(params / 1e6, 1),
        "tokens_per_step": fam.tokens,
        "step_ms": round(sec * 1e3, 1),
        "tokens_per_s": round(fam.tokens / sec),
        "tflops": round(flops / sec / 1e12, 1),
        "peak_fraction": round(flops / sec / peak, 3) if peak else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
        if device.type == "cuda"
        else None,
        "loss_finite": all(map(_finite, losses)),
    }
    del model, opt, x
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def _finite(v: float) -> bool:
    return math.isfinite(v)


def throughput_table(*, dry: bool) -> dict:
    """One row per family; a family that fails (e.g. out of memory) lands in ``errors``; the rest run."""
    device = torch.device("cpu" if dry else "cuda")
    peak = None if dry else spec_peak_bf16(torch.cuda.get_device_name(0))
    rows, errors = [], []
    for make in FAMILIES:
        try:
            fam = make(dry)
            rows.append(measure(fam, device, warmup=1 if dry else 2, steps=1 if dry else 5, peak=peak))
        except Exception as err:  # noqa: BLE001 - recorded; the other families still run
            errors.append(f"{make.__name__[1:]}: {type(err).__name__}: {str(err)[:300]}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(rows[-1] if rows else errors[-1], flush=True)
    data = {
        "device": "cpu" if dry else torch.cuda.get_device_name(0),
        "bf16_peak_tflops": peak and peak / 1e12,
        "rows": rows,
        "errors": errors,
    }
    return data
