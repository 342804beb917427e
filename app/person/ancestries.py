"""Where ancestries come from besides the shipped ones: uploads, timm by name, finished training runs.

Each function ends with a `.safetensors` checkpoint plus its model card in the uploads folder (so
every ancestry the studio uses is loadable with `learngene.models.load_checkpoint`), and checks it by
loading it; on any error the partial files are removed and a `CheckpointError`/`ConfigError` with a
clear message is raised.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from app.logic.results import output_path
from app.person import identity, resources, state
from app.shared import config
from learngene.errors import CheckpointError, ConfigError
from learngene.text import printable

WEIGHT_TYPES = ("safetensors", "pth", "pt")
UPLOAD_TYPES = (*WEIGHT_TYPES, "json")
MAX_STEM = 80  # characters of an uploaded name kept in stored names (a file name may have 255 bytes)


def _slug(name: str) -> str:
    """`name` as a short, safe file name stem (at most MAX_STEM characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:MAX_STEM].strip("._") or "model"


def _new_dir(stem: str) -> Path:
    """A new folder of its own for one import, in the person's uploads: `<time>-<random>-<stem>`."""
    parent = identity.uploads_dir()
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        folder = parent / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}-{_slug(stem)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise CheckpointError(f"could not create a new folder in {parent}")


def _checked(path: Path, folder: Path) -> Path:
    """Load the new checkpoint once (cached for the page); remove `folder` if it does not load."""
    try:
        resources.load_ancestry(path)
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, (CheckpointError, ConfigError)):
            raise
        raise CheckpointError(f"{path.name} could not be loaded: {type(exc).__name__}: {exc}") from exc
    return path


def import_upload(files: list[Any], arch: str = "", num_classes: int = 64, img_size: int = 32) -> Path:
    """Save uploaded files as an ancestry: weights + card, or weights of a named architecture.

    Args:
        files: uploaded files (objects with `.name` and `.getvalue()`): one weights file
            (.safetensors/.pth/.pt) and optionally its model card (.json).
        arch: architecture of weights that come without a card (a preset or timm name).
        num_classes / img_size: the head size and input size of that architecture.
    """
    from learngene.models import ModelCard, create_model, load_weights, save_checkpoint

    weights = [f for f in files if f.name.rsplit(".", 1)[-1].lower() in WEIGHT_TYPES]
    cards = [f for f in files if f.name.lower().endswith(".json")]
    if len(weights) != 1 or len(cards) > 1:
        raise ConfigError("upload exactly one weights file (.safetensors, .pth or .pt) and at most one model "
                          f"card (.json); got {[f.name for f in files]}")
    w = weights[0]
    limit = config.max_upload_bytes()
    for f in files:
        size = getattr(f, "size", None)
        size = len(f.getvalue()) if size is None else int(size)
        if size > limit:
            raise ConfigError(f"{printable(f.name, 80)} is {size / 2**20:.1f} MiB; uploads are at most "
                              f"{limit / 2**20:.0f} MiB on this server")
    stem = _slug(w.name.rsplit(".", 1)[0])
    folder = _new_dir(stem)
    try:
        raw = folder / f"upload-{stem}.{w.name.rsplit('.', 1)[-1].lower()}"
        raw.write_bytes(w.getvalue())
        out = folder / f"{stem}.safetensors"
        if cards:
            try:
                card = ModelCard.from_dict(json.loads(cards[0].getvalue()))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CheckpointError(f"{printable(cards[0].name, 200)} is not a JSON model card: {exc}") from exc
            _check_uploaded_card(card, raw)
            model = create_model(card.spec.arch, card.spec.num_classes, img_size=card.spec.img_size,
                                 **card.spec.overrides)
        else:
            if not arch.strip():
                raise ConfigError("weights without a model card need the architecture name "
                                  "(e.g. lg_vit_tiny or resnet18) and its number of classes")
            model = create_model(arch.strip(), int(num_classes), img_size=int(img_size))
            card = ModelCard(spec=model.lg_spec, dataset="unknown (uploaded weights)",
                             command=f"uploaded {printable(w.name, 200)}")
        load_weights(model, raw, strict=True)
        save_checkpoint(model, out, dataclasses.replace(card, sha256=""))
        raw.unlink(missing_ok=True)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _checked(out, folder)


def _check_uploaded_card(card: Any, weights: Path) -> None:
    """Before anything is built: the card's sizes must be those of the weights (checked on shapes only), and a
    hash the card gives must be the weights' own (an empty one is computed and recorded when saving)."""
    import hashlib

    from learngene.models import check_card_fits

    check_card_fits(card.spec, weights)
    if card.sha256 and weights.suffix == ".safetensors":  # the card's hash is of the safetensors file
        h = hashlib.sha256()
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != card.sha256:
            raise CheckpointError("the uploaded weights are not the ones their model card describes (sha256 differs): "
                                  "upload the weights and the card that were saved together")


def import_timm(arch: str, pretrained: bool, img_size: int = 32) -> Path:
    """A timm architecture by name (with its published weights if `pretrained`; needs network)."""
    from learngene.models import ModelCard, create_model, save_checkpoint

    arch = arch.strip()
    if not arch:
        raise ConfigError("type a timm model name, e.g. vit_tiny_patch16_224, resnet18 or vgg11_bn")
    model = create_model(arch, 1000, img_size=img_size, pretrained=pretrained)  # ImageNet head
    folder = _new_dir(arch)
    card = ModelCard(spec=model.lg_spec, dataset="imagenet-1k (timm pretrained)" if pretrained else "none (random)",
                     command=f"timm.create_model({arch!r}, pretrained={pretrained})")
    try:
        out = save_checkpoint(model, folder / f"{_slug(arch)}.safetensors", card)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _checked(Path(out), folder)


def trained_ancestries() -> list[tuple[str, Path]]:
    """(label, checkpoint) of every finished `accumulate` run, newest first."""
    out = []
    try:
        runs = resources.jobs().list(kind="accumulate", state="done")
    except (OSError, ValueError):
        return out
    for info in runs:
        path = output_path(info, "ancestry.safetensors")
        if path.is_file():
            out.append((f"{info.spec.name} ({info.run_id})", path))
    return out


def uploaded_ancestries() -> list[Path]:
    """Checkpoints this person imported earlier (uploads and timm models), newest first."""
    folder = identity.uploads_dir()
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*/*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)


def pickable() -> list[Path]:
    """Every ancestry this person could pick on the Ancestry page: shipped, trained in a finished run of the
    studio, or imported by them. A link may name only one of these."""
    from learngene.models import shipped_checkpoints

    found = [p for p in config.shipped_ancestries() if p.is_file()]
    found += shipped_checkpoints(config.ROOT / "assets")  # the project's own, also when another assets folder is set
    found += [p for _label, p in trained_ancestries()]
    return found + uploaded_ancestries()


def may_pick(path: str) -> bool:
    """True when `path` is one of `pickable()` (compared as resolved paths; nothing else is looked at)."""
    try:
        want = Path(path).resolve()
    except (OSError, ValueError, RuntimeError):
        return False
    return any(p.resolve() == want for p in pickable())


def use(path: Path | str) -> str:
    """Make `path` the current ancestry. The learngene (layers, similarity result, learngene file, recipe)
    belongs to the old one: it is put aside, and the one put aside for `path` earlier comes back.

    Returns what happened to the learngene, in words ("" when nothing changed), for the page to say.
    """
    now = resources.current_ancestry_path()
    value = "" if Path(path).resolve() == config.default_ancestry().resolve() else str(path)
    if Path(path).resolve() == now.resolve():
        return ""
    _, aside, back = state.switch_ancestry(value, str(now.resolve()), str(Path(path).resolve()))
    words = []
    if aside.get("layers"):
        words.append(f"The learngene of {now.name} (layers {', '.join(map(str, aside['layers']))}) was cleared: it "
                     f"belongs to that ancestry; it comes back when you switch back to {now.name}.")
    elif aside:
        words.append(f"The similarity result and recipe of {now.name} were put aside; they come back when you "
                     f"switch back to it.")
    if back.get("layers"):
        words.append(f"Restored the learngene chosen earlier for {Path(path).name}: layers "
                     f"{', '.join(map(str, back['layers']))}.")
    return " ".join(words)
