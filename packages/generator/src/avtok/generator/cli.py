"""``avtok-generator train | sample | info | convert | train-ar | sample-ar``: train or fine-tune the twin DiT
(fully or with LoRA), convert the released Ovi checkpoint, train the AR generator over AVTok tokens, sample
playable mp4s with sound."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import torch
import typer

from avtok.eval.cli_errors import UserError
from avtok.generator import recipes
from avtok.generator.cli_options import (
    CLIP_HELP,
    DATA_HELP,
    HOLDOUT_HELP,
    OVERWRITE_HELP,
    RESUME_HELP,
    WINDOWS_HELP,
    claim_output,
    data_and_flag,
)
from avtok.generator.conditioning import condition_clip
from avtok.generator.ovi.config import build_config, count_parameters_formula
from avtok.generator.ovi.flow import FlowMatchingConfig
from avtok.generator.ovi.latents import (
    PooledAVLatents,
    PooledLatentConfig,
    TokenizerLatentConfig,
    TokenizerLatents,
)
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.recipe import freeze, latent_dataset, short_run_config, trainable_count
from avtok.generator.ovi.sampling import SamplerConfig
from avtok.generator.ovi.text import EmbeddingCache, minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.media_io import write_clip
from avtok.tokenizer.cli_style import friendly
from avtok.tokenizer.visual.model import VisualTokenizer

app = typer.Typer(
    help="Audio-video generators: Ovi-style twin DiT, AR over AVTok tokens.", no_args_is_help=True
)


def _codec(tokenizer: str | None, seconds: float) -> PooledAVLatents | TokenizerLatents:
    if tokenizer is None:
        return PooledAVLatents(PooledLatentConfig(seconds=seconds))
    from avtok.tokenizer.loading import load_model

    model = load_model(tokenizer)
    if not isinstance(model, VisualTokenizer):
        raise UserError(
            f"--tokenizer {tokenizer}: a {type(model).__name__}; give a visual tokenizer trained with "
            "--mel-images (avtok-tokenizer train --preset tiny-visual --mel-images)"
        )
    return TokenizerLatents(model, TokenizerLatentConfig(seconds=seconds))


def _write_samples(clips: list, output: Path) -> None:
    """One clip -> ``output``; several -> ``<stem>_1<suffix>``, ``<stem>_2<suffix>``, …"""
    for i, clip in enumerate(clips):
        path = output if len(clips) == 1 else output.with_name(f"{output.stem}_{i + 1}{output.suffix}")
        write_clip(path, clip)
        typer.echo(
            f"wrote {path} ({clip.video.shape[0]} frames, "
            f"{clip.audio.shape[-1] / clip.sample_rate:.2f} s audio)"
        )


def _initial_model(init: Path | None, preset: str, text_dim: int, channels: dict[str, int],
                   overrides: dict) -> TwinDiT:
    """A fresh preset model, or (``--init``) a converted / trained one whose latent channels must match."""
    if init is None:
        return TwinDiT(build_config(preset, text_dim=text_dim, **channels, **overrides))
    from avtok.train.pretrained import from_pretrained

    model = from_pretrained(init)
    if not isinstance(model, TwinDiT):
        raise UserError(f"--init {init}: a {type(model).__name__}, not a twin DiT; give a folder "
                                 "written by `avtok-generator convert --from ovi` or `train`")
    got = {"video_channels": model.cfg.video_channels, "audio_channels": model.cfg.audio_channels,
           "text_dim": model.cfg.text_dim}
    want = {**channels, "text_dim": text_dim}
    if got != want:
        raise UserError(f"--init {init}: the model takes {got} but the latent codec / text encoder "
                                 f"give "
                                 f"{want}; use the codec and text encoder the model was trained with")
    return model


def _trainable(model: TwinDiT, freeze_mode: str, lora_rank: int, lora_alpha: float, lora_targets: str,
               lora_towers: str):
    if lora_rank <= 0:
        return freeze(model, freeze_mode)
    from avtok.generator.ovi.lora import LoraSettings, add_lora

    settings = LoraSettings(rank=lora_rank, alpha=lora_alpha, targets=lora_targets.split(","),
                            towers=lora_towers.split(","))
    return add_lora(model, settings)


def _train_config(*, lr: float, steps: int, output: Path, seed: int, strategy: str = "auto"):
    """The CLI's runtime settings for both generators: ``short_run_config`` with ~20 log lines; under
    torchrun ``strategy`` (auto = DDP, or fsdp2) and the process group from torchrun's environment."""
    from dataclasses import replace

    from avtok.train import init_distributed

    init_distributed()
    cfg = short_run_config(lr=lr, steps=steps, checkpoint_dir=output / "checkpoints",
                           warmup_steps=min(50, steps // 10), log_every=max(1, steps // 20), seed=seed)
    return replace(cfg, strategy=strategy)


def _is_main() -> bool:
    from avtok.train.distributed import is_main

    return is_main()


def _full_model(model, cls: type, config):
    """The trained model with full tensors (FSDP2 shards parameters in place; gathering is collective)."""
    from avtok.train.state_dicts import full_model_state, is_fsdp2

    if not is_fsdp2(model):
        return model
    fresh = cls(config)
    fresh.load_state_dict(full_model_state(model), strict=True)
    return fresh


@app.command()
@friendly
def info(
    preset: str = "tiny",
    ar: Annotated[bool, typer.Option("--ar", help="An AR-generator preset (tiny, paper).")] = False,
) -> None:
    """Print a preset's config and parameter counts (closed form)."""
    if ar:
        from avtok.generator.ar.config import build_ar_config, count_ar_parameters_formula

        cfg = build_ar_config(preset)
        counts = count_ar_parameters_formula(cfg)
    else:
        cfg = build_config(preset)
        counts = count_parameters_formula(cfg)
    typer.echo(json.dumps(cfg.to_dict(), indent=2))
    for part, n in counts.items():
        typer.echo(f"{part:>6}: {n:,}")


@app.command()
@friendly
def train(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the trained pipeline.")],
    data: Annotated[list[str], typer.Option("--data", help=DATA_HELP)] = None,
    sources: Annotated[list[str], typer.Option("--clip", help=CLIP_HELP)] = None,
    prompt: Annotated[str, typer.Option(help="Prompt of every training window.")] = "a live band on stage",
    windows: Annotated[int, typer.Option(help=WINDOWS_HELP)] = 4,
    holdout_seconds: Annotated[float, typer.Option(help=HOLDOUT_HELP)] = 0.0,
    preset: str = "tiny",
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 4,
    freeze_mode: Annotated[str, typer.Option("--freeze", help="none | attention | audio | video")] = "none",
    independent_t: bool = False,
    task_probs: Annotated[str, typer.Option(help="t2av,a2v,v2a training probabilities.")] = "1,0,0",
    audio_rope_scale: Annotated[float, typer.Option(help="Override the derived scale (0 = derive).")] = 0.0,
    seconds: float = 2.0,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Visual tokenizer trained with --mel-images (its run or final/ dir; a preset name "
                     "gives random weights): latents come from it. Without it: PooledAVLatents."),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Fine-tune this model folder (convert --from ovi, or a train output).")
    ] = None,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank (0 = full fine-tuning).")] = 0,
    lora_alpha: float = 16.0,
    lora_targets: Annotated[
        str, typer.Option(help="Comma list of self,cross,fusion,ffn.")
    ] = "self,cross,fusion",
    lora_towers: Annotated[str, typer.Option(help="Towers that get adapters: video,audio.")] = "video,audio",
    loss_on: Annotated[str, typer.Option(help="both | video | audio (loss masking).")] = "both",
    ovi_ckpts: Annotated[
        Path | None, typer.Option(help="Ovi's ckpt_dir: latents from its VAEs, text from umT5 (--init Ovi).")
    ] = None,
    text_encoder: Annotated[
        Path | None, typer.Option(help="A transformers umT5 folder (default: Ovi's files under --ovi-ckpts).")
    ] = None,
    frames: Annotated[int, typer.Option(help="With --ovi-ckpts: frames per window, 24 fps (1 + 4k).")] = 121,
    size: Annotated[int, typer.Option(help="With --ovi-ckpts: frame size in px (multiple of 32).")] = 704,
    strategy: Annotated[str, typer.Option(help="Under torchrun: auto (DDP) | ddp | fsdp2 | none.")] = "auto",
    activation_checkpointing: Annotated[
        bool, typer.Option(help="Recompute each fusion block in backward (less memory).")
    ] = False,
    mlflow: bool = False,
    resume: Annotated[bool, typer.Option(help=RESUME_HELP)] = False,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
    seed: int = 0,
) -> None:
    """Train (or fine-tune with --init, fully or with LoRA) on windows of real clips; save a pipeline."""
    options = dict(locals())  # the command's options (before anything else is bound here)
    from avtok.generator.training_data import training_windows
    from avtok.train import init_distributed

    specs, flag = data_and_flag(data, sources)
    init_distributed()
    if ovi_ckpts is not None:  # Ovi's own latents and text encoder (fine-tuning a converted Ovi model)
        from avtok.generator.ovi.ovi_latents import OviLatentConfig, OviLatents
        from avtok.generator.ovi.pipeline import umt5_encoder, umt5_files

        codec = OviLatents(OviLatentConfig(checkpoint_dir=str(ovi_ckpts), frames=frames, size=size))
        encoder = umt5_encoder(**umt5_files(ovi_ckpts, text_encoder))
    else:
        codec, encoder = _codec(tokenizer, seconds), minilm_encoder()
    window = codec.window_config(holdout_seconds=holdout_seconds)
    found = training_windows(specs, window, count=windows * len(specs), seed=seed, flag=flag)
    with claim_output(output, options, command="train", specs=specs, resume=resume, overwrite=overwrite):
        _train_dit(output, SimpleNamespace(**options), codec=codec, encoder=encoder, found=found)


def _train_dit(output: Path, o: SimpleNamespace, *, codec, encoder, found) -> None:
    """``train`` after its data is read and --output claimed (``o``: the command's options)."""
    from avtok.eval.tracking import NullTracker, tracked_run, tracker_for_folder
    from avtok.generator.training_data import log_data

    if isinstance(codec, TokenizerLatents):
        codec.fit(found.clips)  # per-channel latent statistics of the training windows
    text = EmbeddingCache(output / "text_cache", encoder).get([o.prompt] * len(found.clips))
    data = latent_dataset(found.clips, codec, text)
    base, model = _dit_model(o, codec, encoder)
    null = EmbeddingCache(output / "text_cache", encoder).get([""])
    null.embeddings = torch.nn.functional.pad(
        null.embeddings, (0, 0, 0, text.embeddings.shape[1] - null.mask.shape[1])
    )
    null.mask = torch.nn.functional.pad(null.mask, (0, text.mask.shape[1] - null.mask.shape[1]))
    probs = [float(x) for x in o.task_probs.split(",")]
    fm = FlowMatchingConfig(independent_t=o.independent_t, task_probs=probs, loss_on=o.loss_on)
    cfg = _train_config(lr=o.lr, steps=o.steps, output=output, seed=o.seed, strategy=o.strategy)
    tracker = tracker_for_folder(output, experiment="avtok-generator", run_name=f"train-{o.preset}") \
        if o.mlflow and _is_main() else NullTracker()
    scale = base.audio_rope_scale(data[0]["video"][None], data[0]["audio"][None], codec.spec)
    typer.echo(f"{len(data)} windows, {trainable_count(model):,} trainable params, RoPE scale {scale:.4f}")
    with tracked_run(tracker):  # FAILED / KILLED in MLflow when training fails or is interrupted
        if _is_main():  # every rank read the same windows
            log_data(found.stats, tracker, echo=typer.echo)  # skipped / failed / adjusted files
        summary = recipes.train_generator(
            model, data, cfg, fm=fm, spec=codec.spec, null_text=null, batch_size=o.batch_size,
            tracker=tracker, params={"flow": {"independent_t": o.independent_t, "task_probs": o.task_probs}},
            resume=o.resume,
        )
    model = _full_model(model, TwinDiT, base.cfg)  # collective under FSDP2: every rank gathers
    if not _is_main():
        return  # rank 0 writes the pipeline
    if o.lora_rank > 0:
        from avtok.generator.ovi.lora import merge_lora

        model.save_pretrained(str(output / "adapter"))  # peft adapters; load_lora(base, output / "adapter")
        model = merge_lora(model)
    OviPipeline(model, codec, encoder).save(output)
    typer.echo(
        f"trained {summary.steps} steps; "
        f"final loss {summary.last_metrics.get('train/loss', float('nan')):.4f}; "
        f"saved {output}"
    )


def _dit_model(o: SimpleNamespace, codec, encoder) -> tuple[TwinDiT, torch.nn.Module]:
    """The twin DiT (fresh or --init) and what trains: it, frozen in part, or with LoRA adapters."""
    overrides = {"audio_rope_scale": o.audio_rope_scale} if o.audio_rope_scale > 0 else {}
    torch.manual_seed(o.seed)
    channels = {"video_channels": codec.spec.video_channels, "audio_channels": codec.spec.audio_channels}
    base = _initial_model(o.init, o.preset, encoder.dim, channels, overrides)
    if o.lora_rank > 0 and o.strategy == "fsdp2":
        raise UserError("--lora-rank with --strategy fsdp2: adapters are small, use --strategy ddp")
    base.activation_checkpointing = o.activation_checkpointing
    return base, _trainable(base, o.freeze_mode, o.lora_rank, o.lora_alpha, o.lora_targets, o.lora_towers)


@app.command()
@friendly
def sample(
    prompt: Annotated[
        str, typer.Option(help="Combined prompt (speech in <S>…<E>, audio in <AUDCAP>…<ENDAUDCAP>).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output .mp4 (one per seed: _1, _2, … suffixes).")
    ],
    model: Annotated[Path, typer.Option(help="Pipeline directory written by `train`.")],
    task: Annotated[str, typer.Option(help="t2av | i2v | a2v | v2a")] = "t2av",
    input_clip: Annotated[
        Path | None, typer.Option("--input", help="Conditioning clip: a2v takes its sound (an audio-only "
                                                  "file works), v2a its picture (a silent video works).")
    ] = None,
    start: Annotated[float, typer.Option(help="Start (s) of the window read from --input.")] = 0.0,
    steps: int = 50,
    solver: str = "unipc",
    shift: float = 5.0,
    cfg_video: float = 4.0,
    cfg_audio: float = 3.0,
    negative_video: str = "",
    negative_audio: str = "",
    slg_layer: Annotated[
        int, typer.Option(help="Block skipped on the negative pass (0 = off, as Ovi; Ovi: 11).")
    ] = 0,
    ovi_ckpts: Annotated[
        Path | None, typer.Option(help="Ovi's ckpt_dir (VAEs, umT5) for a model from `convert --from ovi`.")
    ] = None,
    text_encoder: Annotated[
        Path | None, typer.Option(help="A transformers umT5 folder (default: Ovi's files under --ovi-ckpts).")
    ] = None,
    frames: Annotated[int, typer.Option(help="With --ovi-ckpts: frames at 24 fps (1 + 4k).")] = 121,
    size: Annotated[int, typer.Option(help="With --ovi-ckpts: frame size in px (multiple of 32).")] = 704,
    seed: int = 0,
    num: int = 1,
) -> None:
    """Sample clip(s) and write playable mp4s with sound."""
    if ovi_ckpts is not None:
        pipe = OviPipeline.for_ovi(model, ckpt_dir=ovi_ckpts, text_encoder=text_encoder, frames=frames,
                                   size=size)
    else:
        pipe = OviPipeline.load(model)
    clips = None
    if task in ("a2v", "v2a", "i2v"):
        if input_clip is None:
            raise UserError(f"--task {task} needs --input clip.mp4 (i2v: its first frame)")
        if task == "i2v" or not hasattr(pipe.codec, "mel"):  # i2v / Ovi's codec: the clip as it is
            clips = [pipe.codec.read(str(input_clip), start=start)] * num
        else:  # a2v / v2a: an audio-only file or a silent video is the natural input
            c = pipe.codec.cfg
            clips = [condition_clip(input_clip, task=task, start=start, seconds=c.seconds, fps=c.fps,
                                    size=(c.size, c.size), sample_rate=pipe.codec.mel.sample_rate, channels=1,
                                    read=lambda p, s, silent: pipe.codec.read(str(p), start=s,
                                                                              allow_silent=silent))
                     ] * num
    cfg = SamplerConfig(steps=steps, solver=solver, shift=shift, cfg_video=cfg_video, cfg_audio=cfg_audio,
                        slg_layer=slg_layer if slg_layer > 0 else None)
    out = pipe.generate(
        [prompt] * num,
        task=task,
        clips=clips,
        seeds=[seed + i for i in range(num)],
        cfg=cfg,
        negative_video=negative_video,
        negative_audio=negative_audio,
    )
    _write_samples(out, output)


@app.command()
@friendly
def convert(
    source: Annotated[
        Path, typer.Argument(help="The official checkpoint file, or its folder (ckpts/ or ckpts/Ovi).")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output model folder (config.json + model.safetensors).")
    ],
    fmt: Annotated[str, typer.Option("--from", help="Checkpoint family; only 'ovi'.")] = "ovi",
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 | keep (the checkpoint's own).")] = "float32",
    heads: Annotated[int, typer.Option(help="Attention heads (0: from video.json, else dim / 128).")] = 0,
) -> None:
    """Convert a released checkpoint into an avtok model folder (e.g. the Ovi 11B fusion model)."""
    from avtok.generator.ovi.convert import convert_ovi

    if fmt != "ovi":
        raise UserError(f"--from {fmt}: only 'ovi' checkpoints are known")
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "keep": None}
    if dtype not in dtypes:
        raise UserError(f"--dtype {dtype}: choose one of {sorted(dtypes)}")
    dest = convert_ovi(source, out, dtype=dtypes[dtype], heads=heads or None)
    typer.echo(f"wrote {dest}")


# --- autoregressive generator over AVTok tokens (issue 9) -------------------------------------------


def _tokenizer(name: str):
    """An AV tokenizer: a ``save_pretrained`` / tokenizer run directory, or a preset (random weights)."""
    from avtok.tokenizer.av.model import AVTokenizer
    from avtok.tokenizer.loading import load_model

    torch.manual_seed(0)  # a preset's random weights are the same on every call
    net = load_model(name)
    if not isinstance(net, AVTokenizer):
        raise UserError(
            f"--tokenizer {name}: a {type(net).__name__}; the AR generator needs an AV "
            "tokenizer (a tiny-av / paper-av preset or its save_pretrained dir)"
        )
    return net


@app.command("train-ar")
@friendly
def train_ar(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the trained AR pipeline.")],
    tokenizer: Annotated[str, typer.Option(help="AV tokenizer dir, or preset (random weights).")] = "tiny-av",
    data: Annotated[
        list[str], typer.Option("--data", help=f"{DATA_HELP}; class = a manifest's label, else i-th source")
    ] = None,
    sources: Annotated[
        list[str], typer.Option("--clip", help=f"{CLIP_HELP} Class i = the i-th source.")
    ] = None,
    windows: Annotated[int, typer.Option(help=WINDOWS_HELP)] = 32,
    holdout_seconds: Annotated[float, typer.Option(help=HOLDOUT_HELP)] = 0.0,
    preset: str = "tiny",
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 16,
    task_probs: Annotated[str, typer.Option(help="joint,a2v,v2a training probabilities.")] = "1,1,1",
    cond_dropout: Annotated[float, typer.Option(help="Condition dropout (for CFG).")] = 0.1,
    strategy: Annotated[str, typer.Option(help="Under torchrun: auto (DDP) | ddp | fsdp2 | none.")] = "auto",
    mlflow: bool = False,
    resume: Annotated[bool, typer.Option(help=RESUME_HELP)] = False,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
    seed: int = 0,
) -> None:
    """Encode windows with the AV tokenizer, train the AR generator through the shared Trainer, save it."""
    options = dict(locals())  # the command's options (before anything else is bound here)
    from avtok.eval.tracking import NullTracker, tracked_run, tracker_for_folder
    from avtok.generator.ar.pipeline import window_config
    from avtok.generator.training_data import log_data, training_windows
    from avtok.train import init_distributed

    specs, flag = data_and_flag(data, sources)
    init_distributed()
    tok = _tokenizer(tokenizer)
    window = window_config(tok, allow_silent=True, holdout_seconds=holdout_seconds)
    found = training_windows(specs, window, count=windows * len(specs), seed=seed, flag=flag)
    with claim_output(output, options, command="train-ar", specs=specs, resume=resume, overwrite=overwrite):
        tracker = NullTracker()
        if mlflow and _is_main():
            tracker = tracker_for_folder(output, experiment="avtok-generator-ar",
                                         run_name=f"train-ar-{preset}")
        with tracked_run(tracker):  # FAILED / KILLED in MLflow when training fails or is interrupted
            if _is_main():  # every rank read the same windows
                log_data(found.stats, tracker, echo=typer.echo)  # skipped / failed / adjusted files
            _train_ar(output, SimpleNamespace(**options), tok=tok, found=found, tracker=tracker)


def _train_ar(output: Path, o: SimpleNamespace, *, tok, found, tracker) -> None:
    from avtok.generator.ar.config import build_ar_config
    from avtok.generator.ar.model import ARTransformer
    from avtok.generator.ar.pipeline import ARPipeline, encode_windows
    from avtok.generator.ar.train import ARTrainConfig, token_dataset

    indices = encode_windows(tok, found.clips)
    t = tok.config
    base = build_ar_config(o.preset)
    cfg = build_ar_config(
        o.preset,
        codebook_size=t.codebook_size,
        video_tokens=t.video_tokens,
        audio_tokens=t.audio_tokens,
        num_classes=max(base.num_classes, found.num_classes),
    )
    torch.manual_seed(o.seed)
    model = ARTransformer(cfg)
    probs = tuple(float(x) for x in o.task_probs.split(","))
    train_cfg = _train_config(lr=o.lr, steps=o.steps, output=output, seed=o.seed, strategy=o.strategy)
    typer.echo(f"{len(indices)} windows → tokens {tuple(indices.shape)}, {model.num_params():,} params")
    summary = recipes.train_ar(
        model, token_dataset(indices, found.labels), train_cfg,
        ar=ARTrainConfig(task_probs=probs, cond_dropout=o.cond_dropout), batch_size=o.batch_size,
        tracker=tracker, params={"ar": cfg.to_dict(), "tokenizer": o.tokenizer, "task_probs": o.task_probs},
        resume=o.resume,
    )
    model = _full_model(model, ARTransformer, cfg)  # collective under FSDP2
    if not _is_main():
        return
    ARPipeline(model, tok).save(output)
    typer.echo(
        f"trained {summary.steps} steps; final loss "
        f"{summary.last_metrics.get('train/loss', float('nan')):.4f}; saved {output}"
    )


@app.command("sample-ar")
@friendly
def sample_ar(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output .mp4 (_1, _2, … with --num > 1).")],
    model: Annotated[Path, typer.Option(help="Directory written by `train-ar`.")],
    task: Annotated[str, typer.Option(help="joint | a2v | v2a")] = "joint",
    label: Annotated[int, typer.Option("--class", help="Class id for --task joint.")] = 0,
    input_clip: Annotated[
        Path | None, typer.Option("--input", help="Conditioning clip: a2v takes its sound (an audio-only "
                                                  "file works), v2a its picture (a silent video works).")
    ] = None,
    start: Annotated[float, typer.Option(help="Start (s) of the window read from --input.")] = 0.0,
    tokenizer: Annotated[
        str | None, typer.Option(help="AV tokenizer dir or preset (default: the one saved with --model).")
    ] = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    cfg_scale: Annotated[
        float, typer.Option("--cfg", help="Classifier-free guidance scale (1 = off).")
    ] = 1.0,
    seed: int = 0,
    num: int = 1,
) -> None:
    """Generate AVTok tokens autoregressively and decode them into playable mp4s with sound."""
    from avtok.generator.ar.pipeline import ARPipeline, read_windows
    from avtok.generator.ar.sampling import ARSamplerConfig

    pipe = ARPipeline.load(model, tokenizer=_tokenizer(tokenizer) if tokenizer else None)
    clips = None
    if task in ("a2v", "v2a"):
        if input_clip is None:
            raise UserError(f"--task {task} needs --input clip.mp4")
        c = pipe.tokenizer.config
        clips = [condition_clip(input_clip, task=task, start=start, seconds=c.seconds, fps=c.fps,
                                size=(c.height, c.width),
                                read=lambda p, s, _: read_windows(pipe.tokenizer, p, starts=[s])[0])] * num
    elif task != "joint":
        raise UserError(f"--task {task}: use joint, a2v or v2a")
    cfg = ARSamplerConfig(temperature=temperature, top_k=top_k, top_p=top_p, cfg_scale=cfg_scale)
    out = pipe.generate(
        task=task,
        labels=[label] * num if task == "joint" else None,
        clips=clips,
        seeds=[seed + i for i in range(num)],
        cfg=cfg,
    )
    _write_samples(out, output)


if __name__ == "__main__":  # python -m avtok.generator.cli (e.g. under torchrun -m)
    app()
