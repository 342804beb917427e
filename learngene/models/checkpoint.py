"""Checkpoints: safetensors weights plus a JSON model card that says how to rebuild and trust them.

A checkpoint is two files side by side: ``name.safetensors`` (the state dict) and ``name.json``
(a `ModelCard`: the `ModelSpec`, the data and split it was trained on, the command, and the
weights' SHA-256). Both are written to temporary files first and only then renamed into place, as a
pair, so a crash or a full disk never leaves a half-written checkpoint or weights without their card.

Loading trusts nothing in the pair: the card's sizes are bounded (`learngene.models._bounds`) and checked
against the weights' own shapes (read from the safetensors header) before the model is built, the
weights must match the card's SHA-256 (a card without one is refused), and weights holding NaN or
infinity are refused, naming the tensors.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import pickle
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from learngene.errors import CheckpointError, ConfigError, check_file
from learngene.models._factory import create_from_spec
from learngene.models._spec import ModelSpec
from learngene.runlog import MAX_JSON_BYTES, commit_files, json_bytes, read_json

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
_SHOW = 5  # keys shown per kind in a mismatch message
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_CARD_BYTES = MAX_JSON_BYTES


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


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in `state` that hold a NaN or an infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def non_finite_message(names: list[str], where: str) -> str:
    return (f"{where} holds NaN or infinite values in {_listing('tensor(s)', names)}; weights like these come "
            "from a training run that diverged, and every result computed from them would be NaN. Use weights "
            "saved before it diverged, or train again with a lower learning rate")


def save_checkpoint(model: nn.Module, path: str | os.PathLike, card: ModelCard) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors) and ``card`` (sha256 filled in) beside it.

    Both files are written to temporary files first and renamed as a pair (see the module doc); a full
    disk raises `StorageError` ("disk full at PATH") and leaves no file behind. Weights holding NaN or
    infinity are refused (`CheckpointError`).

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
    # Clone: safetensors refuses tensors that share storage, and wants contiguous CPU tensors.
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    bad = non_finite(state)
    if bad:
        raise CheckpointError("not saved: " + non_finite_message(bad, f"the model for {path}"))
    data = safetensors_bytes(state, metadata={"format": "pt", "arch": card.spec.arch})
    card.sha256 = hashlib.sha256(data).hexdigest()
    commit_files([(path, data), (card_path(path), json_bytes(card.to_dict()))])
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
            obj = load_file(path, device="cpu")
        else:
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
    bad = non_finite(obj)
    if bad:
        raise CheckpointError(non_finite_message(bad, f"checkpoint {path}"))
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


def _compare(own: dict[str, tuple], stored: dict[str, tuple]) -> LoadReport:
    """Keys and shapes of a model (`own`) against those of stored weights."""
    mismatched = [f"{k}: checkpoint {stored[k]} vs model {own[k]}" for k in sorted(set(own) & set(stored))
                  if stored[k] != own[k]]
    return LoadReport(sorted(set(own) - set(stored)), sorted(set(stored) - set(own)), mismatched)


def _refuse_misfit(report: LoadReport, path: Path, arch: str, advice: str) -> None:
    if not (report.missing or report.unexpected or report.mismatched):
        return
    parts = [_listing(title, items) for title, items in (("missing keys", report.missing),
                                                         ("unexpected keys", report.unexpected),
                                                         ("shape mismatches", report.mismatched)) if items]
    raise CheckpointError(f"checkpoint {path.name} does not fit {arch}: " + "; ".join(parts) + f". {advice}")


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
    report = _compare({k: tuple(v.shape) for k, v in own.items()}, {k: tuple(v.shape) for k, v in state.items()})
    if strict:
        _refuse_misfit(report, path, getattr(getattr(model, "lg_spec", None), "arch", type(model).__name__),
                       "Build the architecture it was saved from (see its model card) or pass strict=False")
    bad = {m.split(":")[0] for m in report.mismatched}
    fitting = {k: v for k, v in state.items() if k in own and k not in bad}
    model.load_state_dict(fitting, strict=strict)
    return report


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of weights file ``path`` (or the card file itself)."""
    path = Path(path)
    cpath = path if path.suffix == ".json" else card_path(path)
    if cpath.exists() and not cpath.is_file():
        raise CheckpointError(f"model card {cpath} is not a regular file")
    try:
        data = read_json(cpath, max_bytes=MAX_CARD_BYTES)
    except ValueError as exc:  # not JSON, not UTF-8, too large
        raise CheckpointError(f"model card {cpath} is not readable JSON: {str(exc)[:200]}") from None
    except OSError as exc:
        raise CheckpointError(f"model card {cpath} cannot be read ({exc.strerror or exc})") from None
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


def _check_sha256(path: Path, card: ModelCard) -> None:
    """The weights must match the card's SHA-256; a card without a valid one is refused, never skipped."""
    cname = card_path(path).name
    if not isinstance(card.sha256, str) or not _SHA256.fullmatch(card.sha256):
        what = "records no SHA-256" if not card.sha256 else f"has a malformed sha256 {str(card.sha256)[:20]!r}"
        raise CheckpointError(
            f"model card {cname} {what} for {path.name}, so the weights cannot be checked; only a "
            f"checkpoint saved with its card (`python -m learngene accumulate`, save_checkpoint in Python, or "
            f"an import in the app) is loaded. Load the bare weights with `python -m learngene models layers "
            f"{path.name} --arch ARCH` instead")
    if file_sha256(path) != card.sha256:
        raise CheckpointError(
            f"{path.name} does not match the SHA-256 in its card {cname}: the weights or "
            f"the card were changed after saving. Restore the original pair of files, or make a new "
            f"checkpoint (`python -m learngene accumulate`, or save_checkpoint in Python), which writes "
            f"weights and a matching card together"
        )


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Tensor name -> shape from a .safetensors header (no tensor data read); None for other formats."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise _load_failure(path, exc) from exc


def check_card_fits(spec: ModelSpec, path: str | os.PathLike) -> None:
    """Refuse a spec whose model would not have the shapes of the weights in `path`, before building it.

    The model is built on PyTorch's meta device (shapes only, no memory) and compared with the
    safetensors header, so a card that names sizes the weights do not have (a hostile `num_classes`,
    `depth` or `embed_dim`) costs nothing. Other weight formats are checked when loaded.
    """
    path = Path(path)
    stored = _header_shapes(path)
    if stored is None:
        return
    with torch.device("meta"):
        skeleton = create_from_spec(spec)
    own = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    _refuse_misfit(_compare(own, stored), path, spec.arch,
                   "The card does not describe these weights: use the card saved with them")


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model described by the card next to ``path`` and load its weights strictly.

    Args:
        path: The .safetensors weights (or their .json card).
        verify: Check the weights' SHA-256 against the card (a card without one is refused).

    Raises:
        CheckpointError: no/invalid card, changed weights, non-finite weights, or weights that do not fit
            the spec (checked against the file's header before anything is built).
    """
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    check_file(path, "checkpoint")
    card = read_card(path)
    if verify:
        _check_sha256(path, card)
    try:
        check_card_fits(card.spec, path)
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
