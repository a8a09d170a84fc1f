"""AR generator over AVTok's unified tokens: layouts, parameter counts, KV cache vs reference, CFG, top-k/p,
training through the shared Trainer on real concert tokens, a2v / v2a, decoding to mp4, save/load, CLI."""

import math

import pytest
import torch
from typer.testing import CliRunner

from avtok.generator.ar.config import build_ar_config, count_ar_parameters_formula
from avtok.generator.ar.model import ARTransformer, ar_layout, build_sequences
from avtok.generator.ar.pipeline import ARPipeline, decode_indices, encode_windows, read_windows
from avtok.generator.ar.sampling import (
    ARSamplerConfig,
    cfg_logits,
    generate_tokens,
    top_k_filter,
    top_p_filter,
)
from avtok.generator.ar.train import ARTrainConfig, ar_loss, token_dataset
from avtok.generator.cli import app
from avtok.media_io import probe, sample_path, write_clip
from avtok.tokenizer.av.model import build_av_tokenizer

GREEDY = ARSamplerConfig(temperature=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return build_av_tokenizer("tiny").eval()


@pytest.fixture(scope="module")
def real_tokens(tokenizer):
    """(16, 48) unified indices of 16 real concert windows spread evenly over the clip (tiny AV tokenizer,
    video then audio)."""
    usable = probe(sample_path("concert")).duration - tokenizer.config.seconds - 0.05
    starts = [usable * (i + 0.5) / 16 for i in range(16)]
    return encode_windows(tokenizer, read_windows(tokenizer, "concert", starts=starts))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ARTransformer(build_ar_config("tiny")).eval()


def _given(task, tokens):
    return {
        "joint": {"labels": [0, 1, 2]},
        "a2v": {"audio": tokens[:3, 32:]},
        "v2a": {"video": tokens[:3, :32]},
    }[task]


def test_parameter_counts_match_closed_form():
    tiny = build_ar_config("tiny")
    assert ARTransformer(tiny).num_params() == count_ar_parameters_formula(tiny)["total"] == 279_784
    paper = build_ar_config("paper")
    with torch.device("meta"):
        big = ARTransformer(paper)
    n = big.num_params()
    assert n == count_ar_parameters_formula(paper)["total"] == 630_067_200
    assert abs(n - 632e6) / 632e6 < 0.005  # AVTok's AR model: ~632M


def test_layouts_positions_and_targets():
    cfg = build_ar_config("tiny")
    a2v = ar_layout(cfg, "a2v")
    assert a2v.prefix == 17 and a2v.order == ("audio", "video") and a2v.generated == ("video",)
    assert a2v.positions[:3].tolist() == [0, 33, 34] and a2v.positions[17:19].tolist() == [1, 2]
    joint = ar_layout(cfg, "joint")
    assert joint.positions.tolist() == list(range(49)) and joint.modality[[0, 1, 33]].tolist() == [0, 1, 2]
    idx = torch.arange(48)[None].repeat(3, 1)
    seq = build_sequences(
        cfg,
        idx,
        torch.tensor([cfg.class_id(2)] * 3),
        ["joint", "a2v", "v2a"],
        torch.tensor([True, True, False]),
    )
    assert seq.ids[0, 0] == cfg.null_class and seq.ids[1, 0] == cfg.task_id("a2v")
    assert (seq.ids[1, 1:17] == cfg.mask_id).all()  # dropped audio condition
    assert seq.ids[1, 17:].tolist() == list(range(32))  # then the video tokens
    assert (seq.targets[0] >= 0).all()  # joint: all 48 tokens predicted
    assert (seq.targets[1, :16] == -100).all() and seq.targets[1, 16:].tolist() == list(range(32))
    assert (seq.targets[2, :32] == -100).all() and seq.targets[2, 32:].tolist() == list(range(32, 48))


def test_causal_perturbing_a_token_leaves_earlier_logits(model):
    lay = ar_layout(model.config, "joint")
    ids = torch.randint(0, 1000, (1, 49))
    ids[0, 0] = model.config.class_id(0)
    other = ids.clone()
    other[0, 20] = (other[0, 20] + 1) % 1000
    a = model(ids, lay.modality[None], lay.positions[None])
    b = model(other, lay.modality[None], lay.positions[None])
    assert torch.equal(a[:, :20], b[:, :20]) and not torch.allclose(a[:, 20:], b[:, 20:])


@pytest.mark.parametrize("task", ["joint", "a2v", "v2a"])
def test_kv_cache_equals_uncached_greedy(model, real_tokens, task):
    for cfg_scale in (1.0, 2.5):  # also the batched cond + uncond pass of CFG through the cache
        kw = dict(task=task, seeds=[0, 1, 2], **_given(task, real_tokens))
        cached = generate_tokens(model, cfg=ARSamplerConfig(temperature=0.0, cfg_scale=cfg_scale), **kw)
        ref = generate_tokens(
            model, cfg=ARSamplerConfig(temperature=0.0, cfg_scale=cfg_scale, use_cache=False), **kw
        )
        assert torch.equal(cached.indices, ref.indices)
    # and the logits themselves: prefill + one token at a time == one full causal pass
    lay = ar_layout(model.config, task)
    ids = torch.cat([torch.tensor([[model.config.task_id("a2v")]]), real_tokens[:1]], dim=1)
    full = model(ids, lay.modality[None], lay.positions[None])
    cache = model.new_cache()
    steps = [model(ids[:, :5], lay.modality[None, :5], lay.positions[None, :5], cache=cache)]
    steps += [
        model(ids[:, j : j + 1], lay.modality[None, j : j + 1], lay.positions[None, j : j + 1], cache=cache)
        for j in range(5, 49)
    ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cfg_mixing_formula_and_guided_first_token(model):
    cond, uncond = torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert torch.equal(cfg_logits(cond, uncond, 1.0), cond)
    assert torch.equal(cfg_logits(cond, uncond, 0.0), uncond)
    assert torch.allclose(cfg_logits(cond, uncond, 3.0), torch.tensor([[4.0, -5.0, 1.5]]))
    # the sampler's first joint token = argmax(u + s (c - u)) with c from class 1 and u from the null class
    c = model.config
    lay = ar_layout(c, "joint")
    with torch.no_grad():
        lc = model(torch.tensor([[c.class_id(1)]]), lay.modality[None, :1], lay.positions[None, :1])[0, -1]
        lu = model(torch.tensor([[c.null_class]]), lay.modality[None, :1], lay.positions[None, :1])[0, -1]
    for s in (1.0, 4.0, -3.0):
        out = generate_tokens(
            model, task="joint", labels=[1], cfg=ARSamplerConfig(temperature=0.0, cfg_scale=s)
        )
        assert out.indices[0, 0] == torch.argmax(lu + s * (lc - lu))


def test_top_k_and_top_p_masks_on_a_hand_example():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    inf = float("-inf")
    k2 = top_k_filter(logits, 2)
    assert torch.isinf(k2).tolist() == [[True, False, True, False]] and k2[0, 1] == logits[0, 1]
    assert torch.equal(top_k_filter(logits, 0), logits) and torch.equal(top_k_filter(logits, 4), logits)
    # mass ranked above: 0.5 → 0, 0.3 → 0.5, 0.15 → 0.8, 0.05 → 0.95
    assert torch.isinf(top_p_filter(logits, 0.7)).tolist() == [[True, False, True, False]]
    assert torch.isinf(top_p_filter(logits, 0.85)).tolist() == [[True, False, False, False]]
    assert torch.isinf(top_p_filter(logits, 0.3)).tolist() == [[True, False, True, True]]  # top-1 kept
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    both = top_p_filter(top_k_filter(logits, 3), 0.9)  # renormalised over the top 3: 0.526, 0.316, 0.158
    assert both[0, 0] == inf and not torch.isinf(both[0, 1:]).any()


def test_sampling_seeds_batched_equals_single(model, real_tokens):
    cfg = ARSamplerConfig(temperature=1.0, top_k=100, top_p=0.95, cfg_scale=2.0)
    batch = generate_tokens(model, task="v2a", video=real_tokens[:3, :32], seeds=[7, 8, 9], cfg=cfg)
    alone = generate_tokens(model, task="v2a", video=real_tokens[1:2, :32], seeds=[8], cfg=cfg)
    assert torch.equal(batch.indices[1], alone.indices[0])
    assert not torch.equal(batch.indices[0, 32:], batch.indices[2, 32:])  # different seeds differ


@pytest.mark.parametrize("task", ["a2v", "v2a"])
def test_a2v_v2a_keep_given_tokens(model, real_tokens, task):
    out = generate_tokens(
        model,
        task=task,
        seeds=[0, 1, 2],
        cfg=ARSamplerConfig(temperature=1.0, cfg_scale=3.0),
        **_given(task, real_tokens),
    )
    given = slice(32, 48) if task == "a2v" else slice(0, 32)
    assert torch.equal(out.indices[:, given], real_tokens[:3, given])
    assert out.generated == (("video",) if task == "a2v" else ("audio",))


def test_teacher_forced_loss_falls_on_real_tokens(real_tokens, tmp_path):
    from avtok.generator.ovi.recipe import short_run_config
    from avtok.generator.recipes import train_ar

    assert len(torch.unique(real_tokens)) > 40  # real windows give varied tokens, not one code
    torch.manual_seed(0)
    model = ARTransformer(build_ar_config("tiny"))
    tasks = ["joint"] * 6 + ["a2v"] * 5 + ["v2a"] * 5
    labels, keep = torch.zeros(16, dtype=torch.long), torch.zeros(16, dtype=torch.bool)

    def fixed_loss() -> float:
        with torch.no_grad():
            return ar_loss(model, real_tokens, labels, tasks, keep)["loss"].item()

    before = fixed_loss()
    assert abs(before - math.log(1000)) < 0.3  # untrained: ~uniform over the 1000-entry codebook
    cfg = short_run_config(lr=3e-3, min_lr=3e-4, steps=40, checkpoint_dir=tmp_path / "ckpt", warmup_steps=4,
                           log_every=10, progress=False)
    summary = train_ar(model, token_dataset(real_tokens), cfg, ar=ARTrainConfig(cond_dropout=0.1), batch_size=8)
    after = fixed_loss()
    counts = torch.bincount(real_tokens.flatten(), minlength=1000).float()
    p = counts[counts > 0] / counts.sum()
    unigram = -(p * p.log()).sum().item()  # best loss of a model that ignores context
    print(f"loss {before:.3f} -> {after:.3f} (unigram entropy {unigram:.3f})")
    assert summary.steps == 40 and after < 0.5 * before and after < unigram, (before, after, unigram)


def test_generated_indices_in_range_and_decode_to_playable_mp4(model, tokenizer, tmp_path):
    out = generate_tokens(
        model, task="joint", labels=[0, 3], seeds=[0, 1], cfg=ARSamplerConfig(temperature=1.5, cfg_scale=2.0)
    )
    assert out.indices.shape == (2, 48) and out.indices.min() >= 0 and out.indices.max() < 1000
    clip = decode_indices(tokenizer, out.indices)[1]
    write_clip(tmp_path / "joint.mp4", clip)
    info = probe(tmp_path / "joint.mp4")
    assert info.has_video and info.has_audio and info.num_frames == 8
    assert clip.audio.abs().max() > 0 and clip.video.float().std() > 0  # decoded, not blank


def test_save_load_round_trip_same_samples(model, tokenizer, real_tokens, tmp_path):
    pipe = ARPipeline(model, tokenizer)
    pipe.save(tmp_path / "ar")
    back = ARPipeline.load(tmp_path / "ar")
    assert back.model.config == model.config
    assert all(
        torch.equal(a, b)
        for a, b in zip(back.model.state_dict().values(), model.state_dict().values(), strict=True)
    )
    cfg = ARSamplerConfig(temperature=1.0, top_p=0.9, cfg_scale=2.0)
    a = generate_tokens(model, task="a2v", audio=real_tokens[:2, 32:], seeds=[5, 6], cfg=cfg)
    b = generate_tokens(back.model, task="a2v", audio=real_tokens[:2, 32:], seeds=[5, 6], cfg=cfg)
    assert torch.equal(a.indices, b.indices)


def test_cli_train_ar_and_sample_ar_write_sounding_mp4(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --mlflow logs to ./mlflow.db
    run = CliRunner().invoke(
        app, ["train-ar", "-o", str(tmp_path / "ar"), "--windows", "4", "--steps", "3", "--batch-size", "4",
              "--mlflow"]
    )
    assert run.exit_code == 0, run.output
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tracked,) = client.search_runs([client.get_experiment_by_name("avtok-generator-ar").experiment_id])
    assert tracked.info.status == "FINISHED" and "train/loss" in tracked.data.metrics
    assert (tmp_path / "ar" / "mlflow_run.json").is_file() and tracked.data.tags["avtok.command"]
    for task, extra in (
        ("joint", ["--class", "1", "--cfg", "2", "--top-k", "50"]),
        ("v2a", ["--input", str(sample_path("concert")), "--start", "12", "--top-p", "0.9"]),
    ):
        out = tmp_path / f"{task}.mp4"
        res = CliRunner().invoke(
            app, ["sample-ar", "--model", str(tmp_path / "ar"), "--task", task, "-o", str(out), *extra]
        )
        assert res.exit_code == 0, res.output
        info = probe(out)
        assert info.has_video and info.has_audio
    bad = CliRunner().invoke(
        app, ["sample-ar", "--model", str(tmp_path / "ar"), "--task", "a2v", "-o", str(tmp_path / "x.mp4")]
    )
    assert bad.exit_code != 0 and "--input" in bad.output


def test_cli_info_ar_paper_counts():
    res = CliRunner().invoke(app, ["info", "--ar", "--preset", "paper"])
    assert res.exit_code == 0, res.output
    assert "630,067,200" in res.output and '"dim": 1280' in res.output


def test_bad_inputs_name_the_fix(model, real_tokens):
    with pytest.raises(ValueError, match="needs the conditioning audio"):
        generate_tokens(model, task="a2v")
    with pytest.raises(ValueError, match=r"expected \(B, 16\)"):
        generate_tokens(model, task="a2v", audio=real_tokens[:1, :32])
    with pytest.raises(ValueError, match="num_classes=4"):
        generate_tokens(model, task="joint", labels=[4])
    with pytest.raises(ValueError, match="unknown task"):
        generate_tokens(model, task="t2av", labels=[0])
