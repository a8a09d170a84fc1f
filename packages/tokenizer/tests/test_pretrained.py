from __future__ import annotations

import json

import pytest
import torch

from avtok.tokenizer import TilingConfig, VisualTokenizer, from_pretrained, save_pretrained


@pytest.mark.parametrize("changes", [{}, {"use_fsq": True, "tiling": TilingConfig(tile_frames=8)}])
def test_save_load_identity(tiny, tmp_path, concert, changes) -> None:
    model = tiny(**changes)
    save_pretrained(model, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors"}
    loaded = from_pretrained(tmp_path)
    assert isinstance(loaded, VisualTokenizer) and loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    a, b = model.encode(concert), loaded.encode(concert)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.semantic, b.semantic)
    assert torch.equal(model.decode(a)[0], loaded.decode(b)[0])


def test_load_errors_name_the_fix(tiny, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        from_pretrained(tmp_path)
    save_pretrained(tiny(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["not_a_field"] = 1
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="newer avtok release"):
        from_pretrained(tmp_path)
    meta["kind"] = "nope"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown model kind"):
        from_pretrained(tmp_path)
