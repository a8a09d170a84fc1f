import pytest
import torch
from typer.testing import CliRunner

from avtok.generator.cli import app
from avtok.generator.ovi.config import build_config
from avtok.generator.ovi.pipeline import OviPipeline
from avtok.generator.ovi.sampling import SamplerConfig
from avtok.generator.ovi.text import minilm_encoder
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.media_io import probe, read_clip, sample_path


@pytest.fixture(scope="module")
def saved(tmp_path_factory, codec):
    torch.manual_seed(0)
    pipe = OviPipeline(TwinDiT(build_config("tiny", depth=1)), codec, minilm_encoder())
    return pipe, pipe.save(tmp_path_factory.mktemp("pipe"))


def test_save_load_round_trip_gives_identical_samples(saved):
    pipe, path = saved
    loaded = OviPipeline.load(path, encoder=pipe.encoder)
    for a, b in zip(pipe.model.state_dict().values(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    cfg = SamplerConfig(steps=2, cfg_video=2.0, cfg_audio=2.0)
    x = pipe.generate(["a band"], seeds=[3], cfg=cfg, negative_video="blurry")[0]
    y = loaded.generate(["a band"], seeds=[3], cfg=cfg, negative_video="blurry")[0]
    assert torch.equal(x.video, y.video) and x.video.shape == (8, 32, 32, 3)
    assert x.audio.shape[0] == 1 and x.sample_rate == 22050


def test_cli_samples_playable_mp4_with_sound(saved, tmp_path):
    _, path = saved
    out = tmp_path / "a2v.mp4"
    res = CliRunner().invoke(
        app,
        [
            "sample",
            "--model",
            str(path),
            "--prompt",
            "a band <S>hello<E>",
            "--task",
            "a2v",
            "--input",
            str(sample_path("concert")),
            "--start",
            "10",
            "--steps",
            "2",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    info = probe(out)
    assert info.has_video and info.has_audio and info.num_frames == 8
    assert read_clip(out).audio.abs().max() > 0.01  # the given real audio comes back through the vocoder
    bad = CliRunner().invoke(
        app, ["sample", "--model", str(path), "--prompt", "x", "--task", "v2a", "-o", str(out)]
    )
    assert bad.exit_code != 0 and "--input" in bad.output


def test_cli_info_prints_parameter_counts():
    res = CliRunner().invoke(app, ["info", "--preset", "ovi-11b"])
    assert res.exit_code == 0 and "11,131,533,524" in res.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_forward_on_gpu_matches_fp32():
    torch.manual_seed(0)
    m = TwinDiT(build_config("tiny")).cuda()
    v, a = torch.randn(2, 4, 4, 4, 3, device="cuda"), torch.randn(2, 10, 80, device="cuda")
    t, text = torch.rand(2, device="cuda"), torch.randn(2, 5, 384, device="cuda")
    ref = m(v, a, t, t, text)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = m(v, a, t, t, text)
    assert (low.video.float() - ref.video).abs().mean() < 0.05 * ref.video.abs().mean() + 1e-3
