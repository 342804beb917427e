"""A cache of trained pseudo-descendants, so that condensing again with other settings is quick.

Training the pseudo-descendant is most of a CKA run's time; the CKA itself takes a second or two.
A trained pseudo-descendant depends only on the ancestry (its sha256: the pseudo-descendant's shape
and seed-0 initialisation follow from it), the data (data set, its generation settings and the
open-world classes) and its own training settings (an adaptive budget's caps too; a fixed budget,
such as the shipped ones', keys as before budgets adapted), so it is stored as a checkpoint under a key
hashed from exactly those, and reused when they all match. Changing the token treatment, the number
of probe images, `cka_of` or the selection then costs seconds instead of a new training.

Where a pseudo-descendant is looked for, in order:
1. `<folder of the ancestry>/pseudo/*.safetensors`: the ones shipped beside the shipped ancestries
   (made by `assets/reproduce.sh`; their card's `extra["pd_key"]` says which settings they match);
2. `$LEARNGENE_CACHE/pseudo/<key>.safetensors` (default `~/.cache/learngene/pseudo`), written after
   every training.
A file that fails its sha256 check or does not load is ignored (and trained again).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from learngene.condense.config import CondenseConfig
from learngene.data import ImageSet
from learngene.data.shapes import cache_dir
from learngene.errors import CheckpointError, ConfigError
from learngene.models import ModelCard, load_checkpoint, read_card, save_checkpoint

KEY_VERSION = 1
# not part of the data's identity (flip is a training setting: it enters the key below when off)
_VOLATILE_META = {"seconds", "from_cache", "cache_path", "data_seed", "split_from", "flip", "split_file"}
PD_FIELDS = ("pd_epochs", "pd_lr", "pd_batch_size", "pd_depth", "holdout_per_class", "train_per_class", "seed")
"""The CondenseConfig fields a trained pseudo-descendant depends on."""


def pd_key(ancestry_sha256: str, ds: ImageSet, cfg: CondenseConfig, pd_spec: dict[str, Any]) -> str:
    """The cache key of a pseudo-descendant (hex sha256 of what it depends on)."""
    meta = {k: v for k, v in sorted(ds.meta.items())
            if k not in _VOLATILE_META and isinstance(v, (int, float, str, bool))}
    ident = {"v": KEY_VERSION, "ancestry": ancestry_sha256, "dataset": ds.name, "data": meta,
             "open_world": [int(c) for c in ds.split.classes("open")], "pd_spec": pd_spec,
             "train": {k: getattr(cfg, k) for k in PD_FIELDS}}
    if not cfg.flip:  # only when off, so the keys of the pseudo-descendants shipped before it stay valid
        ident["flip"] = False
    if (cfg.pd_max_epochs or 0) > (cfg.pd_epochs or 0):  # an adaptive budget; a fixed one keeps the old keys
        ident["budget"] = {"max_epochs": cfg.pd_max_epochs, "max_seconds": cfg.pd_max_seconds}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> Path:
    return cache_dir().parent / "pseudo"  # beside the generated data sets (cache_dir() is their folder)


@dataclass
class PDCache:
    """Where trained pseudo-descendants are looked up and stored for one ancestry.

    Attributes:
        ancestry_sha256: the ancestry's identity; empty = no caching (nothing to key on).
        read_dirs: folders searched (shipped first).
        write_dir: where a newly trained one is stored (None: nowhere).
        save_to: also save the pseudo-descendant used here (e.g. `assets/pseudo/<stem>.safetensors`).
    """

    ancestry_sha256: str
    read_dirs: list[Path] = field(default_factory=list)
    write_dir: Path | None = None
    save_to: Path | None = None

    @classmethod
    def for_ancestry(cls, ancestry_path: str | Path | None, sha256: str, *, use: bool = True,
                     save_to: str | Path | None = None) -> PDCache:
        """The default places for an ancestry checkpoint; `use=False` neither reads nor writes."""
        reads: list[Path] = []
        if use and ancestry_path is not None:
            reads.append(Path(ancestry_path).parent / "pseudo")
        if use:
            reads.append(default_cache_dir())
        return cls(sha256 if use or save_to else "", reads, default_cache_dir() if use else None,
                   Path(save_to) if save_to else None)

    def _candidates(self, key: str) -> list[Path]:
        out = []
        for folder in self.read_dirs:
            direct = folder / f"{key}.safetensors"
            if direct.is_file():
                out.append(direct)
            elif folder.is_dir():
                for path in sorted(folder.glob("*.safetensors")):
                    try:
                        if read_card(path).extra.get("pd_key") == key:
                            out.append(path)
                    except (CheckpointError, OSError, ValueError):
                        continue
        return out

    def load(self, key: str) -> tuple[nn.Module, list[dict], Path] | None:
        """(model, training history, file) of a stored pseudo-descendant with this key, or None."""
        for path in self._candidates(key):
            try:
                model, card = load_checkpoint(path)
            except (CheckpointError, ConfigError, OSError, RuntimeError):
                continue
            history = card.extra.get("pd_history")
            if card.extra.get("pd_key") == key and isinstance(history, list):
                return model, history, path
        return None

    def store(self, key: str, model: nn.Module, history: list[dict], ds: ImageSet, cfg: CondenseConfig,
              only_save_to: bool = False) -> list[Path]:
        """Save a trained pseudo-descendant to the cache folder and `save_to` (only there with
        `only_save_to`: it came from the cache); returns what was written."""
        card = ModelCard(spec=model.lg_spec, dataset=ds.name, split={"open_world": list(ds.split.open_world)},
                         epochs=int(cfg.pd_epochs or 0), seed=cfg.seed,
                         base_accuracy=history[-1].get("test_acc") if history else None,
                         command="pseudo-descendant of `learngene condense` (cka)",
                         extra={"role": "pseudo-descendant", "pd_key": key, "pd_history": history,
                                "ancestry_sha256": self.ancestry_sha256,
                                "pd_settings": {k: getattr(cfg, k) for k in PD_FIELDS}})
        written = []
        targets = ([self.write_dir / f"{key}.safetensors"] if self.write_dir and not only_save_to else []) + \
            ([self.save_to] if self.save_to else [])
        for path in targets:
            try:
                written.append(save_checkpoint(model, path, card))
            except OSError:  # a read-only or full cache folder: go on without caching
                continue
        return written
