import pytest
import torch

from avtok.eval.fvd import I3DFeatures, fvd


class TinyVideoNet(torch.nn.Module):
    """Stand-in TorchScript video network (real I3D weights are not on PyPI): (N,3,T,224,224) -> (N,6)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(3, 4))  # (N, 3, T)
        return torch.cat([pooled.mean(-1), pooled.std(-1)], dim=1)


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="FVD needs I3D weights at a local path.*not FVD"):
        I3DFeatures(None)
    with pytest.raises(FileNotFoundError, match="i3d_torchscript.pt"):
        I3DFeatures(tmp_path / "missing.pt")


def test_files_that_are_not_torchscript_are_refused_before_loading(tmp_path):
    state = tmp_path / "i3d_state.pt"
    torch.save(TinyVideoNet().state_dict() | {"w": torch.zeros(2)}, state)
    with pytest.raises(ValueError, match=r"i3d_state.pt: a torch.save archive without TorchScript code.*--i3d"):
        I3DFeatures(state)
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ValueError, match=r"notes.pt: not a TorchScript archive"):
        I3DFeatures(text)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_fvd_with_a_local_torchscript_network(tmp_path, concert_clips):
    path = tmp_path / "net.pt"
    torch.jit.script(TinyVideoNet()).save(str(path))
    extractor = I3DFeatures(path, call_style="plain", num_frames=16)
    videos = [c.video_float() for c in concert_clips] + [concert_clips[0].video_float().flip(2)]
    assert extractor(videos[0]).shape == (1, 6)
    assert fvd(videos, videos, extractor=extractor) == pytest.approx(0.0, abs=1e-9)
    # Closed form: a constant offset c moves the 3 channel means by c and leaves the stds unchanged,
    # so FVD = 3 c^2 (the resize is linear and preserves constants).
    half = [v * 0.5 for v in videos]
    shifted = [v + 0.25 for v in half]
    assert fvd(shifted, half, extractor=extractor) == pytest.approx(3 * 0.25**2, rel=1e-4)
    with pytest.raises(ValueError, match="16"):
        extractor(videos[0][:8])
