"""The main job's tiny path on ``--device cuda`` with synthetic clips (a part of tools/gpu_check.py).

The GPU image has no PyAV (media I/O), polars (tables) or MiniLM weights, so this runs the job's compute
path, not its I/O and report: the job's ``tiny`` preset (``avtok.generator.job.config``) trains

1. the AV tokenizer through ``avtok.tokenizer.runner.train_tokenizer`` (the VFAL schedule, every stage,
   the shared Trainer, checkpoints) on synthetic windows (moving colour bars + a tone), then reconstructs
   a held-out window;
2. the twin DiT through ``avtok.generator.recipes.train_generator`` on ``PooledAVLatents`` of synthetic
   clips with a fixed random text embedding (MiniLM is not on the image), then samples t2av clips with
   UniPC through ``OviPipeline``.

Real media through the whole job are checked on CPU (tests/test_demo.py).
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from pathlib import Path

import torch

from avtok.media_io import AVClip, MelConfig

STEPS = 24  # per model on the device (seconds of work); the dry run takes 2


def synthetic_clip(frames: int, size: tuple[int, int], fps: float, sample_rate: int, seed: int) -> AVClip:
    """Moving colour bars (uint8 video) and a tone whose pitch follows the seed: learnable, not constant."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    t = torch.arange(frames)[:, None, None]
    x = torch.arange(w)[None, None, :].expand(1, h, w)
    phase = torch.rand(3, generator=g) * 6.28
    video = torch.stack([((torch.sin((x + 3 * t) / 5 + p) + 1) * 127.5) for p in phase], -1)
    video = video.round().clamp(0, 255).to(torch.uint8)  # (T, H, W, 3)
    n = round(frames / fps * sample_rate)
    freq = 220.0 * (1 + seed % 5)
    audio = 0.3 * torch.sin(2 * math.pi * freq * torch.arange(n) / sample_rate)[None]  # (1, N)
    return AVClip(video=video.contiguous(), fps=fps, audio=audio.float(), sample_rate=sample_rate)


def _synthetic_clips(cfg) -> list[AVClip]:
    from avtok.tokenizer.av.config import resolve_av_config

    c = resolve_av_config(cfg.preset)
    return [synthetic_clip(c.frames, (c.height, c.width), c.fps, MelConfig().sample_rate, s) for s in range(8)]


def _synthetic_prepare(cfg):
    """Stands in for the AV recipe's ``prepare`` (which reads media with PyAV): same context, synthetic."""
    from avtok.tokenizer.av import recipe
    from avtok.tokenizer.av.config import resolve_av_config

    c = resolve_av_config(cfg.preset)
    clips = _synthetic_clips(cfg)
    _, _, tm = recipe.window_tensors(clips[:6], c.num_samples)
    hv, _, hm = recipe.window_tensors(clips[6:], c.num_samples)
    return recipe.AVContext(train_mel=tm, held_out=clips[6:], held_video=hv, held_mel=hm, held_clips=[],
                            window=recipe.window_config(cfg))


class _SyntheticStream:
    """Stands in for the recipe's ``WindowStream`` (which decodes media with PyAV): endless batches of the
    synthetic training windows through the recipe's own transform; a position the Trainer can checkpoint."""

    def __init__(self, data, config, *, batch_size: int, seed: int, readers, transform, cache_mb=0.0) -> None:
        from avtok.media_io.windows import WindowSample

        clips = _SyntheticStream.clips
        self.samples = [WindowSample(video=c.video, audio=c.audio, fps=c.fps, sample_rate=c.sample_rate,
                                     start=0.0, source=f"synthetic-{i}") for i, c in enumerate(clips)]
        self.batch_size, self.transform, self.step = min(batch_size, len(self.samples)), transform, 0

    clips: list = []

    def __iter__(self):
        return self

    def __next__(self):
        from avtok.media_io.windows import collate_windows

        n = len(self.samples)
        picked = [self.samples[(self.step * self.batch_size + i) % n] for i in range(self.batch_size)]
        self.step += 1
        return self.transform(collate_windows(picked))

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])

    def stats(self):
        from avtok.media_io.window_plan import DataStats

        return DataStats()


def train_tokenizer_synthetic(job, *, device: str, steps: int, workdir: Path) -> dict:
    from avtok.tokenizer import families
    from avtok.tokenizer.av import recipe
    from avtok.tokenizer.av.clip import AVClipReconstructor
    from avtok.tokenizer.recipes import RunConfig
    from avtok.tokenizer.runner import train_tokenizer

    run = RunConfig(
        family="av",
        preset=job.tokenizer,
        schedule="vfal",
        data="synthetic",
        max_steps=steps,
        batch_size=job.tokenizer_batch,
        warmup_steps=1,
        eval_every=10**6,
        eval_windows=2,
        perceptual=False,
        mrstft=False,
        checkpoint_dir=workdir / "tokenizer",
        device=device,
        artifacts=False,
        progress=False,
    )
    synthetic = types.SimpleNamespace(
        **{k: getattr(recipe, k) for k in dir(recipe) if not k.startswith("__")}
    )
    synthetic.prepare = _synthetic_prepare
    saved, saved_stream = families.FAMILIES["av"], recipe.WindowStream
    _SyntheticStream.clips = _synthetic_clips(run)[:6]
    families.FAMILIES["av"] = synthetic  # the job's driver, with the data step swapped for synthetic clips
    recipe.WindowStream = _SyntheticStream
    try:
        model, results = train_tokenizer(run)
    finally:
        families.FAMILIES["av"], recipe.WindowStream = saved, saved_stream
    ctx = _synthetic_prepare(run)
    recon = AVClipReconstructor(model.eval(), vocoder="griffinlim")  # HiFi-GAN's weights are not there
    rec = recon.reconstruct(ctx.held_out[0])
    err = (rec.video.float() - ctx.held_out[0].video.float()).abs().mean().item() / 255
    return {
        "stages": [{"name": r.name, "steps": r.steps} for r in results],
        "model_device": str(next(model.parameters()).device),
        "heldout_video_mae": round(err, 4),
        "finite": bool(torch.isfinite(rec.audio).all()),
    }


@dataclass
class FixedText:
    """A text encoder stand-in (MiniLM's weights are not on the GPU image): one fixed embedding per prompt."""

    dim: int
    name: str = "fixed-random"

    def encode(self, prompts: list[str]):
        from avtok.generator.ovi.text import TextEmbeddings

        g = torch.Generator().manual_seed(len(prompts))
        emb = torch.randn(len(prompts), 6, self.dim, generator=g)
        return TextEmbeddings(embeddings=emb, mask=torch.ones(len(prompts), 6, dtype=torch.bool))


def train_generator_synthetic(job, *, device: str, steps: int, workdir: Path) -> dict:
    from avtok.generator.ovi.config import build_config
    from avtok.generator.ovi.flow import FlowMatchingConfig
    from avtok.generator.ovi.latents import PooledAVLatents
    from avtok.generator.ovi.pipeline import OviPipeline
    from avtok.generator.ovi.recipe import latent_dataset
    from avtok.generator.ovi.sampling import SamplerConfig
    from avtok.generator.ovi.twin_dit import TwinDiT
    from avtok.generator.recipes import train_generator
    from avtok.train import TrainConfig

    codec = PooledAVLatents(job.latents)
    c = codec.cfg
    clips = [
        synthetic_clip(codec.spec.video_frames, (c.size, c.size), c.fps, MelConfig().sample_rate, s)
        for s in range(8)
    ]
    encoder = FixedText(dim=384)
    items = latent_dataset(clips, codec, encoder.encode(["a synthetic clip"] * len(clips)))
    torch.manual_seed(0)
    model = TwinDiT(build_config(job.generator, text_dim=encoder.dim, **job.generator_overrides)).to(device)
    cfg = TrainConfig(
        lr=job.generator_lr,
        min_lr=job.generator_lr / 10,
        warmup_steps=1,
        max_steps=steps,
        ema_decay=None,
        weight_decay=0.0,
        checkpoint_dir=workdir / "generator",
        progress=False,
        log_every=max(1, steps // 4),
    )
    summary = train_generator(
        model,
        items,
        cfg,
        fm=FlowMatchingConfig(task_probs=(0.5, 0.5, 0.0), text_dropout=0.0),
        spec=codec.spec,
        batch_size=job.generator_batch,
        device=device,
    )
    pipe = OviPipeline(model, codec, encoder)
    with torch.no_grad():
        out = pipe.generate(
            ["a", "b"],
            task="t2av",
            seeds=[1, 2],
            cfg=SamplerConfig(steps=4, solver="unipc", shift=3.0, cfg_video=1.0, cfg_audio=1.0),
        )
    return {
        "steps": summary.steps,
        "final_loss": summary.last_metrics.get("train/loss"),
        "samples": [list(o.video.shape) for o in out],
        "finite": all(bool(torch.isfinite(o.audio).all()) for o in out),
    }


def smoke(*, dry: bool, workdir: Path) -> dict:
    from avtok.generator.job.config import PRESETS

    device = "cpu" if dry else "cuda"
    job = PRESETS["tiny"]()
    steps = 2 if dry else STEPS
    workdir.mkdir(parents=True, exist_ok=True)
    data = {"device": device, "preset": "tiny"}
    data["tokenizer"] = train_tokenizer_synthetic(job, device=device, steps=steps, workdir=workdir)
    data["generator"] = train_generator_synthetic(job, device=device, steps=steps, workdir=workdir)
    errors = [f"{k}: non-finite output" for k in ("tokenizer", "generator") if not data[k]["finite"]]
    if device == "cuda" and data["tokenizer"]["model_device"] != "cuda:0":
        errors.append(f"tokenizer trained on {data['tokenizer']['model_device']}, not cuda")
    data["errors"] = errors
    return data
