"""Curricula: trainable parameters and lr multipliers per VFAL / AToken stage, round-robin ratios,
stage k starting from stage k−1's checkpoint (on a real short concert clip)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from avtok.media_io import read_clip, sample_path, write_clip
from avtok.tokenizer import build_av_tokenizer, build_tokenizer, runner
from avtok.tokenizer.curriculum import (
    ATOKEN_TASK_RATIOS,
    AV_ROLES,
    RoundRobinTasks,
    TaskSampler,
    apply_stage,
    available_ratios,
    get_schedule,
)
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import train_tokenizer
from avtok.train import CheckpointManager, ResumableLoader, TrainConfig, build_optimizer


def _role_of(name: str) -> str | None:
    hits = [(len(p), r) for r, ps in AV_ROLES.items() for p in ps if name == p or name.startswith(p + ".")]
    return max(hits)[1] if hits else None


def _group_scale(opt, param) -> float | None:
    for g in opt.param_groups:
        if any(p is param for p in g["params"]):
            return g["lr_scale"]
    return None


@pytest.mark.parametrize(
    "stage_index,want",
    [
        (0, {"video_enc": 1.0, "video_dec": 1.0, "encoder": 1.0, "decoder": 1.0, "prior": 1.0}),
        (
            1,
            {
                "audio_enc": 1.0,
                "audio_dec": 1.0,
                "encoder": 0.1,
                "decoder": 0.1,
                "video_enc": 0.1,
                "video_dec": 0.1,
                "prior": 1.0,
            },
        ),
        (
            2,
            {
                "video_dec": 1.0,
                "audio_dec": 1.0,
                "decoder": 1.0,
                "encoder": 0.1,
                "video_enc": 0.1,
                "audio_enc": 0.1,
                "prior": 1.0,
            },
        ),
    ],
)
def test_vfal_stage_trainable_params_and_multipliers(stage_index, want) -> None:
    model = build_av_tokenizer("tiny")
    stage = get_schedule("vfal", family="av").stages[stage_index]
    mults = apply_stage(model, stage)
    opt = build_optimizer(model, TrainConfig(lr=1e-3, warmup_steps=0, max_steps=10, lr_multipliers=mults))
    seen = set()
    for name, p in model.named_parameters():
        role = _role_of(name)
        scale = want.get(role, 0.0)
        assert p.requires_grad == (scale > 0), name
        assert _group_scale(opt, p) == (scale if scale > 0 else None), name  # frozen: no optimizer group
        seen.add(role)
    assert {"align", "prior"} <= seen  # the AR prior trains in every stage (its loss is on by default);
    # the alignment head needs a frozen foundation model's features, which do not ship: frozen throughout
    assert not any(p.requires_grad for p in model.align_head.parameters())


def test_vanilla_trains_everything_at_x1_and_audio_is_frozen_in_vfal_stage_1() -> None:
    model = build_av_tokenizer("tiny")
    assert apply_stage(model, get_schedule("vanilla").stages[0]) == {}  # all x1: no multiplier entries
    assert all(p.requires_grad for n, p in model.named_parameters() if _role_of(n) != "align")
    apply_stage(model, get_schedule("vfal").stages[0])
    assert not any(p.requires_grad for p in model.streams["audio"].parameters())
    assert all(p.requires_grad for p in model.streams["video"].parameters())


def test_atoken_stages_encoder_x01_from_checkpoint_fsq_last_3d_skipped() -> None:
    sched = get_schedule("atoken", family="visual")
    assert [s.name for s in sched.active] == ["image", "video", "fsq"]
    assert [s.init for s in sched.active] == ["scratch", "previous", "previous"]
    assert [s.use_fsq for s in sched.active] == [False, False, True]
    model = build_tokenizer("tiny")
    assert apply_stage(model, sched.active[0]) == {}
    mults = apply_stage(model, sched.active[1])
    assert mults == {"patch_embed": 0.1, "enc_pos": 0.1, "encoder": 0.1, "latent_head": 0.1, "semantic": 0.1}
    opt = build_optimizer(model, TrainConfig(lr=1e-3, warmup_steps=0, max_steps=10, lr_multipliers=mults))
    assert _group_scale(opt, next(model.encoder.parameters())) == 0.1
    assert _group_scale(opt, next(model.to_pixels.parameters())) == 1.0
    with pytest.raises(ValueError, match="for the av tokenizer"):
        get_schedule("vfal", family="visual")


def test_round_robin_ratios_exact_over_many_draws_and_resumable() -> None:
    # AToken Table 2 with every task available: stage 3/4 = 22.2:11.1:44.4:11.1:11.1 = 2:1:4:1:1
    full = available_ratios(ATOKEN_TASK_RATIOS["fsq"], set(ATOKEN_TASK_RATIOS["fsq"]))
    assert full == {"image_rec": 2, "video_und": 1, "video_rec": 4, "3d_und": 1, "3d_rec": 1}
    assert available_ratios(ATOKEN_TASK_RATIOS["video"], {"image_rec", "video_rec"}) == {
        "image_rec": 1,
        "video_rec": 3,
    }
    sampler = TaskSampler(full)
    draws = [next(sampler) for _ in range(900)]
    assert Counter(draws) == {k: 100 * v for k, v in full.items()}
    for c in range(100):  # exact within every cycle of 9 (what grad_accum = 9 balances)
        assert Counter(draws[9 * c : 9 * c + 9]) == full
    s2 = TaskSampler(full)
    for _ in range(13):
        next(s2)
    s3 = TaskSampler(full)
    s3.load_state_dict(s2.state_dict())
    assert [next(s3) for _ in range(20)] == draws[13:33]
    with pytest.raises(ValueError, match="positive integers"):
        TaskSampler({"a": 0})


def test_round_robin_tasks_data_source_state_round_trip() -> None:
    def sources():
        return {
            "a": ResumableLoader(torch.arange(10.0), batch_size=2, seed=1),
            "b": ResumableLoader(torch.arange(100.0, 130.0), batch_size=3, seed=2),
        }

    rr = RoundRobinTasks(sources(), {"a": 1, "b": 3})
    assert rr.cycle == 4
    seq = [next(rr) for _ in range(7)]
    assert [x["task"] for x in seq[:4]].count("b") == 3
    rr2 = RoundRobinTasks(sources(), {"a": 1, "b": 3})
    rr2.load_state_dict(rr.state_dict())
    a, b = next(rr), next(rr2)
    assert a["task"] == b["task"] and torch.equal(a["batch"], b["batch"])


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    """4.5 s of the real concert clip (its audio included) as an mp4."""
    clip = read_clip(sample_path("concert"), start=20.0, duration=4.5)
    return write_clip(tmp_path_factory.mktemp("clip") / "concert_4s.mp4", clip)


def test_stage_k_starts_from_stage_k_minus_1_checkpoint(short_clip, tmp_path, monkeypatch) -> None:
    starts = []
    original = runner._run_stage

    def spy(cfg, ctx, family, model, stage, k, *args):
        starts.append({k_: v.detach().clone() for k_, v in model.state_dict().items()})
        return original(cfg, ctx, family, model, stage, k, *args)

    monkeypatch.setattr(runner, "_run_stage", spy)
    cfg = RunConfig(
        schedule="vfal",
        data=str(short_clip),
        holdout_seconds=1.0,
        max_steps=6,
        batch_size=2,
        eval_windows=1,
        checkpoint_dir=tmp_path,
        artifacts=False,
    )
    model, results = train_tokenizer(cfg)
    assert [r.name for r in results] == ["video", "audio", "decoders"] and len(starts) == 3
    for k in (1, 2):
        prev = CheckpointManager(runner.stage_dir(tmp_path, k - 1, results[k - 1])).load(None).model
        assert set(prev) == set(starts[k])
        for key, value in prev.items():
            assert torch.equal(starts[k][key], value), key
    prev0 = CheckpointManager(runner.stage_dir(tmp_path, 0, results[0])).load(None).model
    changed = [k for k in prev0 if not torch.equal(prev0[k], starts[0][k])]
    assert changed, "stage 0 trained nothing"
    assert not any(k.startswith("streams.audio.") for k in changed)  # audio frozen in VFAL stage 1
    last = CheckpointManager(runner.stage_dir(tmp_path, 2, results[2])).load(None)
    out = model.state_dict()
    assert all(torch.equal(out[k], last.ema[k]) for k in out)  # the run's output: the last stage's EMA
    assert any(not torch.equal(out[k], last.model[k]) for k in out)  # … which differs from the raw weights


def test_resume_keeps_stages_that_stopped_on_their_time_budget(short_clip, tmp_path) -> None:
    cfg = RunConfig(
        schedule="vanilla",
        data=str(short_clip),
        holdout_seconds=1.0,
        minutes=0.005,  # 0.3 s: stops on the budget long before max_steps
        max_steps=100_000,
        batch_size=2,
        eval_windows=1,
        checkpoint_dir=tmp_path,
        artifacts=False,
    )
    _, first = train_tokenizer(cfg)
    assert not first[0].skipped and first[0].steps < 100_000
    _, again = train_tokenizer(cfg, resume=True)  # same budget: finished, nothing retrained
    assert again[0].skipped and again[0].steps == first[0].steps
    longer = RunConfig(**{**cfg.to_dict(), "minutes": 0.01})
    _, more = train_tokenizer(longer, resume=True)  # a larger budget continues the stage
    assert not more[0].skipped and more[0].start_step == first[0].steps
