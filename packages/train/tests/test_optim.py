"""Schedule values at known steps; parameter groups with lr multipliers and no-decay sets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from avtok.train import (
    TrainConfig,
    build_optimizer,
    build_scheduler,
    param_groups,
    warmup_cosine,
)


def test_schedule_at_known_steps():
    kw = {"warmup_steps": 100, "max_steps": 1100, "min_ratio": 0.1}
    assert warmup_cosine(0, **kw) == pytest.approx(0.01)
    assert warmup_cosine(49, **kw) == pytest.approx(0.5)
    assert warmup_cosine(99, **kw) == pytest.approx(1.0)  # warmup end: the peak
    assert warmup_cosine(100, **kw) == pytest.approx(1.0)  # cosine starts at the peak
    assert warmup_cosine(600, **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # cosine midpoint
    assert warmup_cosine(350, **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(1100, **kw) == pytest.approx(0.1)  # end = min lr
    assert warmup_cosine(5000, **kw) == pytest.approx(0.1)  # and it stays there


def test_scheduler_drives_every_group_with_its_multiplier(toy):
    cfg = TrainConfig(lr=3e-4, min_lr=3e-5, warmup_steps=10, max_steps=110, lr_multipliers={"encoder": 0.1})
    model = toy.make_model()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)
    seen = {}
    for step in range(111):
        seen[step] = {g["lr_scale"]: g["lr"] for g in opt.param_groups}
        opt.step()
        sched.step()
    assert seen[9][1.0] == pytest.approx(3e-4) and seen[9][0.1] == pytest.approx(3e-5)
    assert seen[60][1.0] == pytest.approx(3e-5 + (3e-4 - 3e-5) * 0.5)
    assert seen[110][1.0] == pytest.approx(3e-5) and seen[110][0.1] == pytest.approx(3e-6)


def test_param_groups_multipliers_and_no_decay(toy):
    model = toy.make_model()
    groups = param_groups(model, weight_decay=0.1, lr_multipliers={"encoder": 0.1, "encoder.1": 0.0})
    by_name = {n: (g["lr_scale"], g["weight_decay"]) for g in groups for n in g["names"]}
    assert by_name == {
        "encoder.0.weight": (0.1, 0.1), "encoder.0.bias": (0.1, 0.0),  # bias: no decay
        "encoder.1.weight": (0.0, 0.0), "encoder.1.bias": (0.0, 0.0),  # longest prefix wins; norm: no decay
        "decoder.weight": (1.0, 0.1), "decoder.bias": (1.0, 0.0),
    }
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_embeddings_frozen_params_and_names_containing_module():
    model = nn.ModuleDict({"emb": nn.Embedding(10, 4), "proj": nn.Linear(4, 4), "submodule": nn.Linear(4, 2)})
    model["proj"].bias.requires_grad_(False)
    groups = param_groups(model, weight_decay=0.1, lr_multipliers={"submodule": 2.0})
    names = {n: (g["weight_decay"], g["lr_scale"]) for g in groups for n in g["names"]}
    assert names == {"emb.weight": (0.0, 1.0), "proj.weight": (0.1, 1.0), "submodule.weight": (0.1, 2.0),
                     "submodule.bias": (0.0, 2.0)}


def test_unknown_multiplier_prefix_is_an_error(toy):
    with pytest.raises(ValueError, match="no parameters under \\['encodr'\\]"):
        param_groups(toy.make_model(), weight_decay=0.1, lr_multipliers={"encodr": 0.1})


def test_adamw_hyperparameters(toy):
    opt = build_optimizer(toy.make_model(), TrainConfig())
    assert isinstance(opt, torch.optim.AdamW)
    assert all(g["betas"] == (0.9, 0.95) for g in opt.param_groups)
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.1}


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="lr_multipliers"):
        TrainConfig(lr_multipliers={"encoder": -1.0})
