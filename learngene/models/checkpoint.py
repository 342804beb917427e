"""Checkpoints: safetensors weights plus a JSON model card that says how to rebuild and trust them.

A checkpoint is two files side by side: ``name.safetensors`` (the state dict) and ``name.json``
(a `ModelCard`: the `ModelSpec`, the data and split it was trained on, the command, and the
weights' SHA-256). Both are written to a temporary file and ``os.replace``d, so a crash never
leaves a half-written checkpoint in place of a good one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import pickle
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from learngene.errors import CheckpointError, ConfigError, check_file
from learngene.models._factory import create_from_spec
from learngene.models._spec import ModelSpec
from learngene.runlog import FILE_MODE, atomic_write_json, read_json

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
_SHOW = 5  # keys shown per kind in a mismatch message


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ModelCard:
    """What a checkpoint is: architecture, training data and provenance (saved as JSON)."""

    spec: ModelSpec
    dataset: str = ""
    split: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    seed: int = 0
    base_accuracy: float | None = None
    command: str = ""
    created: str = field(default_factory=_now)
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Inverse of `to_dict`; unknown keys or a missing spec raise `ConfigError`."""
        if not isinstance(data, dict) or "spec" not in data:
            raise ConfigError("a model card must be a JSON object with a 'spec' entry")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model card keys {unknown}; expected some of {sorted(known)}")
        return cls(**{**data, "spec": ModelSpec.from_dict(data["spec"])})


def card_path(path: str | os.PathLike) -> Path:
    """The card of a weights file: ``<stem>.json`` next to it."""
    return Path(path).with_suffix(".json")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: nn.Module, path: str | os.PathLike, card: ModelCard) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors) and ``card`` (sha256 filled in) beside it.

    Returns:
        The weights path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"checkpoints are saved as .safetensors, got {path.name!r}")
    spec = getattr(model, "lg_spec", None)
    if spec is not None and spec != card.spec:
        raise ConfigError(
            f"the card's spec {card.spec} differs from the model's {spec}; load_checkpoint would "
            f"rebuild the wrong architecture (use ModelCard(spec=model.lg_spec, ...))"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Clone: safetensors refuses tensors that share storage, and wants contiguous CPU tensors.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": "pt", "arch": card.spec.arch})
        os.chmod(tmp, FILE_MODE)  # after save_file, which creates the file anew
        card.sha256 = file_sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_json(card_path(path), card.to_dict())
    return path


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _load_failure(path: Path, exc: Exception) -> CheckpointError:
    """A one-line error for a weights file torch or safetensors could not read.

    torch's own text for a pickle that refers to code suggests ``weights_only=False``, which would
    run that code; it is never passed on.
    """
    text = _ANSI.sub("", str(exc))
    found = _GLOBAL.search(text)
    if isinstance(exc, pickle.UnpicklingError) and (found or "safe_globals" in text):
        what = f", which refers to {found.group(1)[:100]}" if found else ""
        return CheckpointError(
            f"refused: this {path.suffix} contains pickled code, not only tensors; Learngene Studio loads "
            f"weights only ({path}{what}). Save a plain state dict of tensors, preferably as .safetensors"
        )
    # the first line of the cause that is not torch's advice to turn the weights-only check off
    lines = [ln for ln in text.splitlines() if ln.strip() and "weights_only" not in ln.replace(" ", "_")
             and "Weights only load failed" not in ln]
    first = " ".join(lines[0].split())[:200] if lines else "no details"
    return CheckpointError(
        f"cannot read checkpoint {path}: the file is corrupt, truncated or not a "
        f"{path.suffix} weights file ({type(exc).__name__}: {first})"
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    check_file(path, "checkpoint")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise CheckpointError(f"cannot read {path.name}: weights must be one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        if path.suffix == ".safetensors":
            return load_file(path, device="cpu")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, zip and unpickling errors differ by cause
        raise _load_failure(path, exc) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel/DDP
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _listing(title: str, items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"{len(items)} {title}: {', '.join(items[:_SHOW])}{more}"


@dataclass
class LoadReport:
    """Keys that did not line up when weights were loaded (empty lists after a strict load)."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # "key: checkpoint (a, b) vs model (c, d)"


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> LoadReport:
    """Load a .safetensors or .pth/.pt state dict (plain or under "state_dict"/"model") into ``model``.

    Args:
        model: The model to fill, in place.
        path: Weights file; .pth/.pt are read with ``weights_only=True``.
        strict: Refuse any missing, unexpected or differently shaped key. When False, load the keys
            that fit and report the rest.

    Raises:
        CheckpointError: missing or unreadable file, or (strict) keys that do not match the model.
    """
    path = Path(path)
    state = _read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    report = LoadReport(missing, unexpected, mismatched)
    if strict and (missing or unexpected or mismatched):
        parts = [
            _listing(title, items)
            for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("shape mismatches", mismatched))
            if items
        ]
        arch = getattr(getattr(model, "lg_spec", None), "arch", type(model).__name__)
        raise CheckpointError(
            f"checkpoint {path.name} does not fit {arch}: " + "; ".join(parts)
            + ". Build the architecture it was saved from (see its model card) or pass strict=False"
        )
    bad = {m.split(":")[0] for m in mismatched}
    fitting = {k: v for k, v in state.items() if k in own and k not in bad}
    model.load_state_dict(fitting, strict=strict)
    return report


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of weights file ``path`` (or the card file itself)."""
    path = Path(path)
    cpath = path if path.suffix == ".json" else card_path(path)
    data = read_json(cpath)
    if data is None:
        raise CheckpointError(
            f"no model card {cpath.name} next to {path.name}: the card says which architecture to "
            f"build. Put the .json card saved with these weights beside them under that name "
            f"(`python -m learngene accumulate` saves a checkpoint with its card). Without a card, "
            f"load_weights loads them into a model built in Python, and "
            f"`python -m learngene models layers PATH --arch ARCH` inspects them"
        )
    try:
        return ModelCard.from_dict(data)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"model card {cpath} is invalid: {exc}") from exc


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model described by the card next to ``path`` and load its weights strictly.

    Args:
        path: The .safetensors weights (or their .json card).
        verify: Check the weights' SHA-256 against the card.

    Raises:
        CheckpointError: no/invalid card, changed weights, or weights that do not fit the spec.
    """
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    check_file(path, "checkpoint")
    card = read_card(path)
    if verify and card.sha256 and file_sha256(path) != card.sha256:
        raise CheckpointError(
            f"{path.name} does not match the SHA-256 in its card {card_path(path).name}: the weights or "
            f"the card were changed after saving. Restore the original pair of files, or make a new "
            f"checkpoint (`python -m learngene accumulate`, or save_checkpoint in Python), which writes "
            f"weights and a matching card together"
        )
    try:
        model = create_from_spec(card.spec)
    except ConfigError as exc:
        raise CheckpointError(f"model card {card_path(path).name} describes an unbuildable model: {exc}") from exc
    load_weights(model, path, strict=True)
    return model, card


def default_assets_dir() -> Path:
    """The repository's ``assets/`` folder (next to the ``learngene`` package)."""
    return Path(__file__).resolve().parents[2] / "assets"


def shipped_checkpoints(assets_dir: str | os.PathLike | None = None) -> list[Path]:
    """The ``*.safetensors`` files in ``assets_dir`` (default: the repo's assets/) that have a card."""
    folder = Path(assets_dir) if assets_dir is not None else default_assets_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.safetensors") if card_path(p).is_file())
