"""save_pretrained / from_pretrained for every avtok model: ``model.safetensors`` + ``config.json``.

A model class registers itself with ``register_model(kind, config_cls, builder)`` and exposes
``.config`` (a dataclass) and a class attribute ``kind``. Loading is safe by construction: weights come
from safetensors (no pickle) and the config is plain JSON turned back into typed dataclasses.
:func:`read_state_dict` is the one reader of foreign weight files (released checkpoints, teachers, VGG):
safetensors, or torch files with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import types
import typing
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from avtok.train.atomic import atomic_write_text

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "register_model", "save_pretrained", "from_pretrained",
           "config_to_dict", "config_from_dict", "owner_package", "read_state_dict"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_REGISTRY: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {}
# where training scripts nest a plain state dict (AToken: state_dict / model / ema; Ovi: module, app.model)
STATE_DICT_WRAPPERS = ("state_dict", "model", "ema", "module", "app")


def register_model(kind: str, config_cls: type, builder: Callable[[Any], nn.Module]) -> None:
    """Make ``from_pretrained`` able to rebuild models whose config.json says ``"kind": kind``."""
    _REGISTRY[kind] = (config_cls, builder)


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _coerce(tp: Any, value: Any) -> Any:
    """Turn a JSON value back into the annotated type (nested dataclasses, tuples, optionals)."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                return _coerce(arg, value)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value)
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v) for v in value)
    return value


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of ``config_to_dict``; unknown keys are an error (a config from a newer version)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}; the checkpoint was "
                         "probably written by a newer avtok release — upgrade the package named in its "
                         "config.json")
    return cls(**{k: _coerce(hints[k], v) for k, v in data.items()})


def owner_package(model: nn.Module) -> tuple[str, str | None]:
    """The distribution that defines ``model``'s class and its version, e.g. ``("avtok-generator", "0.1.0")``:
    a checkpoint records the package that can rebuild it, not the runtime's."""
    root = ".".join(type(model).__module__.split(".")[:2])  # avtok.generator
    version = getattr(importlib.import_module(root), "__version__", None)
    return root.replace(".", "-").replace("_", "-"), version


def save_pretrained(model: nn.Module, directory: str | Path) -> Path:
    """Write ``config.json`` (kind, version, config) and ``model.safetensors`` into ``directory``, each file
    atomically (other files there are left alone; ``atomic.atomic_directory`` swaps in a whole directory)."""
    kind = getattr(model, "kind", None)
    if kind not in _REGISTRY:
        raise ValueError(f"{type(model).__name__} has no registered kind ({kind!r}); call "
                         "register_model(kind, ConfigClass, builder) for it first")
    package, version = owner_package(model)
    meta = {"kind": kind, "package": package, "version": version, "config": config_to_dict(model.config)}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / WEIGHTS_NAME)  # each file appears whole; for a whole directory see atomic_directory
    atomic_write_text(out / CONFIG_NAME, json.dumps(meta, indent=2))
    return out


def from_pretrained(directory: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model from ``config.json`` and load ``model.safetensors`` (strict key match)."""
    src = Path(directory)
    cfg_path, weights_path = src / CONFIG_NAME, src / WEIGHTS_NAME
    for path in (cfg_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; pass a directory written by save_pretrained")
    try:
        meta = json.loads(cfg_path.read_text())
    except ValueError as err:
        raise ValueError(f"{cfg_path}: not valid JSON ({err}); the model directory is damaged, save it "
                         "again or pass another directory") from err
    kind = meta.get("kind")
    if kind not in _REGISTRY:
        raise ValueError(f"{cfg_path}: unknown model kind {kind!r}; known kinds are {sorted(_REGISTRY)} "
                         "(import the package that registers it first)")
    config_cls, builder = _REGISTRY[kind]
    model = builder(config_from_dict(config_cls, meta["config"]))
    try:
        weights = load_file(str(weights_path), device=str(device))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type for torn files
        raise ValueError(f"{weights_path}: unreadable ({type(err).__name__}: {err}); the file is "
                         "truncated or "
                         "not safetensors, save the model again or pass another directory") from err
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval()


def read_state_dict(path: str | Path, *, key: str | None = None,
                    source: str = "the official checkpoint") -> dict[str, Tensor]:
    """Tensors of a foreign weight file, read without running its code.

    ``.safetensors`` with safetensors; any other file with ``torch.load(weights_only=True)`` (tensors and
    plain containers only, never pickled objects). ``key`` selects the entry holding the weights (e.g.
    ``"generator"`` in BigVGAN's ``best_netG.pt``); without it a state dict nested by a training script
    under one of :data:`STATE_DICT_WRAPPERS` is unwrapped. A missing, truncated, corrupt, code-carrying or
    tensor-less file raises one line naming the file and ``source`` (what the user should pass).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; weights are never downloaded at run time, "
                                f"pass {source}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file as load_safetensors

        try:
            obj: Any = load_safetensors(str(path))
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for torn files
            raise ValueError(f"{path}: not a readable safetensors file ({err}); the file is truncated or "
                             "corrupt — download it again") from err
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except zipfile.BadZipFile as err:
            raise ValueError(f"{path}: truncated or corrupt torch checkpoint ({err}); "
                             "download it again") from err
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ValueError(f"{path}: not a readable torch checkpoint ({first}); the file is truncated or "
                             "corrupt — download it again") from err
        except Exception as err:  # noqa: BLE001 - UnpicklingError (objects other than tensors), EOFError
            first = str(err).splitlines()[0] if str(err) else ""
            raise ValueError(f"{path}: cannot be read with torch.load(weights_only=True) "
                             f"({type(err).__name__}: {first}); avtok only reads plain state dicts and "
                             "never unpickles arbitrary objects — re-save it as a state dict or "
                             "safetensors") from err
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise KeyError(f"{path}: no {key!r} entry (found {found}); pass {source}")
        obj = obj[key]
    return _tensors(obj, path, source)


def _tensors(obj: Any, path: Path, source: str) -> dict[str, Tensor]:
    if isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        for wrapper in STATE_DICT_WRAPPERS:
            if isinstance(obj.get(wrapper), Mapping):
                return _tensors(obj[wrapper], path, source)
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (name → tensor), got {type(obj).__name__}; "
                         f"pass {source}")
    return {str(k): v for k, v in obj.items()}
