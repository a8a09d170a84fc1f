"""LPIPS with stand-in weights (real VGG16 weights are not on PyPI): loading, taps and the formula."""

import pytest
import torch
import torch.nn.functional as F

from avtok.eval.lpips import LPIPS, vgg16_features


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    feats = vgg16_features()
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # extra keys of a full vgg16 file are ignored
    torch.save(state, root / "vgg16.pth")
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(heads, root / "vgg.pth")
    return root / "vgg16.pth", root / "vgg.pth", state, heads


def reference_lpips(x, y, state, heads):
    """Independent functional forward pass over the raw state dicts."""
    def run(t):
        t = (t.permute(0, 3, 1, 2) - torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)) / torch.tensor(
            [0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        outs, idx = [], 0
        for stage, n in enumerate((2, 2, 3, 3, 3)):
            if stage:
                t = F.max_pool2d(t, 2)
                idx += 1
            for _ in range(n):
                t = F.relu(F.conv2d(t, state[f"features.{idx}.weight"], state[f"features.{idx}.bias"], padding=1))
                idx += 2
            outs.append(t / (t.norm(dim=1, keepdim=True) + 1e-10))
        return outs

    return sum(((a - b) ** 2 * heads[f"lin{i}.model.1.weight"]).sum(1).mean((1, 2))
               for i, (a, b) in enumerate(zip(run(x), run(y))))


def test_matches_the_functional_reference(weights, natural_images):
    backbone, heads_path, state, heads = weights
    metric = LPIPS(backbone_path=backbone, heads_path=heads_path)
    x = natural_images[:2, :64, :64]
    y = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    got = metric(y, x)
    assert torch.allclose(got, reference_lpips(y, x, state, heads), rtol=1e-4)
    assert (got > 0).all() and torch.allclose(metric(x, x), torch.zeros(2))


def test_missing_weights_are_a_clear_error(tmp_path, weights, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty local cache
    with pytest.raises(FileNotFoundError, match="LPIPS needs VGG16 backbone weights"):
        LPIPS(backbone_path=None)
    with pytest.raises(FileNotFoundError, match="linear-head"):
        LPIPS(backbone_path=weights[0], heads_path=tmp_path / "none.pth")
