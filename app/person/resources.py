"""Cached access to what pages read: the ancestry model, similarity results, the job manager.

Models are cached with `st.cache_resource` (bounded: at most a few ancestries stay in memory),
plain data with `st.cache_data`. Cache keys include the file's modification time and size, so a
re-trained or replaced file is read again. Everything loads on the CPU; nothing here trains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from app.person import state
from app.shared import config
from learngene.errors import CheckpointError


@dataclass
class Ancestry:
    """A loaded ancestry: the CPU model, its card, and its integral layers."""

    path: Path
    model: Any  # torch.nn.Module, eval mode, CPU
    card: Any  # learngene.models.ModelCard
    names: list[str]
    layer_params: list[int]
    total_params: int
    family: str
    card_dict: dict[str, Any] = field(default_factory=dict)
    stem_params: int = 0
    head_in: int = 0  # input features of the classifier head

    @property
    def n_layers(self) -> int:
        return len(self.names)

    @property
    def label(self) -> str:
        arch = self.card_dict.get("spec", {}).get("arch", "?")
        return f"{self.path.name} ({arch}, {self.n_layers} layers)"


def file_stamp(path: str | os.PathLike) -> tuple[float, int]:
    """(mtime, size) of a file, the part of a cache key that notices a replaced file."""
    st_ = Path(path).stat()
    return st_.st_mtime, st_.st_size


def _card_dict(card: Any) -> dict[str, Any]:
    if card is None:
        return {}
    if hasattr(card, "to_dict"):
        return card.to_dict()
    return dict(vars(card))


@st.cache_resource(max_entries=3, show_spinner="Loading the ancestry model…")
def _load_ancestry(path: str, stamp: tuple[float, int]) -> Ancestry:
    from learngene.models import family_of, layer_view, load_checkpoint

    model, card = load_checkpoint(path)
    model = model.cpu().eval()
    view = layer_view(model)
    names = list(view.names)
    params = [int(view.num_params(i)) for i in range(len(names))]
    total = sum(p.numel() for p in model.parameters())
    stem = sum(sum(p.numel() for p in part.parameters()) if hasattr(part, "parameters") else part.numel()
               for part in view.stem().values())
    head = view.head()
    head_in = int(getattr(head, "in_features", 0) or next((p.shape[-1] for p in head.parameters() if p.ndim == 2), 0))
    return Ancestry(Path(path), model, card, names, params, total, str(family_of(model)), _card_dict(card),
                    stem_params=int(stem), head_in=head_in)


def load_ancestry(path: str | os.PathLike) -> Ancestry:
    """The ancestry at `path` (cached); raises `CheckpointError` with a clear message on trouble."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no ancestry checkpoint at {p}")
    return _load_ancestry(str(p.resolve()), file_stamp(p))


def current_ancestry_path() -> Path:
    """The checkpoint chosen in the studio state, else the embedded default."""
    chosen = state.get().ancestry
    return Path(chosen) if chosen else config.default_ancestry()


def current_ancestry() -> Ancestry:
    """The current ancestry (cached); raises `CheckpointError` when it is missing or broken."""
    return load_ancestry(current_ancestry_path())


@st.cache_data(max_entries=32, show_spinner=False)
def _load_similarity(path: str, stamp: tuple[float, int]) -> Any:
    from learngene.condense import SimilarityResult

    return SimilarityResult.load(path)


def load_similarity(path: str | os.PathLike) -> Any:
    """A `SimilarityResult` read from JSON (cached on path + mtime)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no similarity result at {p}")
    return _load_similarity(str(p.resolve()), file_stamp(p))


@st.cache_resource(show_spinner=False)
def _job_manager(runs_dir: str) -> Any:
    from learngene.jobs import JobManager

    mgr = JobManager(runs_dir)
    mgr.warm_up()  # the fork server loads while people look around, not on the first click
    return mgr


def jobs() -> Any:
    """The job manager of the configured runs folder (one per folder, shared by sessions)."""
    return _job_manager(str(config.runs_dir().resolve()))


@st.cache_data(max_entries=16, show_spinner="Computing layer significance with captum…")
def significance(path: str, stamp: tuple[float, int], measure: str, n_images: int = 16, seed: int = 0) -> Any:
    """Per-layer captum significance of the ancestry at `path` on `n_images` base-class images."""
    import torch

    from app.logic.significance import layer_modules, layer_significance

    anc = load_ancestry(path)
    x, y = base_batch(anc, n_images, seed)
    torch.manual_seed(seed)
    return layer_significance(anc.model, layer_modules(anc.model, anc.names), x, y, measure)


def base_batch(anc: Ancestry, n_images: int, seed: int = 0) -> tuple[Any, Any]:
    """A small batch of base-class images (normalised) with labels 0..len(base)-1, as in training."""
    import torch

    from learngene.data import load_dataset, normalize

    card = anc.card_dict
    name = card.get("dataset") or "shapes"
    split = card.get("split") or {}
    base = list(split.get("base") or [])
    per_class = max(1, -(-n_images // max(len(base), 1)))
    ds = load_dataset(name, images_per_class=max(per_class, 2), seed=int(card.get("extra", {}).get("data_seed", 0)))
    base = base or list(ds.split.base)
    lut = {c: i for i, c in enumerate(base)}
    idx = [i for i, lab in enumerate(ds.labels.tolist()) if lab in lut]
    gen = torch.Generator().manual_seed(seed)
    pick = torch.tensor(idx)[torch.randperm(len(idx), generator=gen)[:n_images]]
    size = int(card.get("spec", {}).get("img_size") or ds.image_size)
    x = normalize(ds.images[pick])
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = torch.tensor([lut[int(v)] for v in ds.labels[pick].tolist()])
    return x, y


@st.cache_data(max_entries=16, show_spinner=False)
def _learngene_layers(path: str, stamp: tuple[float, int]) -> list[int]:
    from learngene.inherit.learngene_file import load_learngene

    return list(load_learngene(path).layers)


def learngene_file_for(layers: list[int]) -> str | None:
    """The learngene file in use, if it exists and holds exactly `layers` (else the layers come from the ancestry)."""
    path = state.get().learngene_file
    if not path or not Path(path).is_file():
        return None
    try:
        return path if _learngene_layers(path, file_stamp(path)) == sorted(layers) else None
    except Exception:  # noqa: BLE001 - a damaged file is simply not used
        return None
