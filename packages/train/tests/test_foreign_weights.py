"""read_state_dict: the one reader of foreign weight files (released checkpoints, teachers, VGG)."""

import pytest
import torch
from safetensors.torch import save_file

from avtok.train.pretrained import read_state_dict

STATE = {"w": torch.arange(6.0).view(2, 3), "b": torch.tensor([1.5, -2.0])}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_wrapped_and_selected_state_dicts(tmp_path):
    save_file(STATE, tmp_path / "m.safetensors")
    assert _same(read_state_dict(tmp_path / "m.safetensors"), STATE)
    for name, obj in {"plain": STATE, "lightning": {"state_dict": STATE, "epoch": 3},
                      "deepspeed": {"module": STATE, "step": 7}, "ovi": {"app": {"model": STATE}, "it": 1},
                      "ema": {"ema": STATE, "note": "x"}}.items():
        torch.save(obj, tmp_path / f"{name}.pt")
        assert _same(read_state_dict(tmp_path / f"{name}.pt"), STATE), name
    torch.save({"generator": STATE, "discriminator": {"d": torch.zeros(1)}}, tmp_path / "g.pt")
    assert _same(read_state_dict(tmp_path / "g.pt", key="generator"), STATE)
    with pytest.raises(KeyError, match=r"plain.pt: no 'generator' entry \(found \['b', 'w'\]\); pass X"):
        read_state_dict(tmp_path / "plain.pt", key="generator", source="X")


def test_bad_files_fail_with_one_line_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.pt: no such file; .*pass the released file"):
        read_state_dict(tmp_path / "nope.pt", source="the released file")
    torch.save(STATE, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="half.pt: .*truncated or corrupt"):
        read_state_dict(tmp_path / "half.pt")
    save_file(STATE, tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "torn.safetensors").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="torn.safetensors: not a readable safetensors file"):
        read_state_dict(tmp_path / "torn.safetensors")
    torch.save({"w": torch.zeros(1), "hook": print}, tmp_path / "code.pt")  # a pickled function: never run
    with pytest.raises(ValueError, match=r"code.pt: cannot be read with torch.load\(weights_only=True\)"):
        read_state_dict(tmp_path / "code.pt")
    torch.save({"w": torch.zeros(1), "lr": 0.1}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match=r"mixed.pt: expected a state dict \(name → tensor\), got dict; pass Y"):
        read_state_dict(tmp_path / "mixed.pt", source="Y")
