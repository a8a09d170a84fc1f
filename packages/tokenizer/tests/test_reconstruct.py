from __future__ import annotations

import torch

from avtok.eval import Reconstructor
from avtok.media_io import read_clip, sample_path
from avtok.tokenizer import VisualReconstructor


def test_reconstructor_satisfies_eval_protocol(tiny) -> None:
    clip = read_clip(sample_path("concert"), start=5.0, duration=6 / 24, size=(40, 56))
    rec = VisualReconstructor(tiny(use_fsq=True))
    assert isinstance(rec, Reconstructor)
    out = rec.reconstruct(clip)
    assert out.video.shape == clip.video.shape and out.video.dtype == torch.uint8
    assert torch.equal(out.audio, clip.audio) and out.fps == clip.fps
    assert rec.last_indices.dtype == torch.int32 and rec.last_indices.shape[-1] == 8
    (expected,) = rec.model.decode(rec.model.encode(clip.video_float()))
    assert torch.equal(out.video, ((expected.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
