"""Finished results shipped with an ancestry checkpoint, so the app shows them without a job.

Beside `assets/<stem>.safetensors` (and its `.json` card) the project ships, all made by
`assets/reproduce.sh`:

- `assets/<stem>.pd.safetensors` (+ `.pd.json` card): the trained pseudo-descendant of the CKA
  methods (see `learngene.condense.pdcache`);
- `assets/similarity/<stem>-<view>.json`: one `SimilarityResult` per view (`VIEWS`);
- `assets/<stem>.probe.json`: the measured per-layer gains (`learngene probe`).

A shipped file is used only for the checkpoint it was made from: its recorded ancestry sha256 must
equal the checkpoint card's.
"""

from __future__ import annotations

from pathlib import Path

from learngene.condense.result import SimilarityResult
from learngene.errors import CheckpointError

VIEWS: dict[str, str] = {
    "cka": "linear CKA of the layers' outputs (the residual stream of a ViT)",
    "cka-update": "linear CKA of what each layer adds (its residual update)",
    "auto": "Auto-LG meta-learned matching weights",
    "gradient": "Heur-LG gradient stability (layer × epoch)",
    "weights": "weight drift when the ancestry is fine-tuned",
}
"""Shipped similarity views, by file suffix, in the order the page offers them."""


def similarity_dir(checkpoint: str | Path) -> Path:
    return Path(checkpoint).parent / "similarity"


def similarity_path(checkpoint: str | Path, view: str) -> Path:
    """Where the shipped `view` result of `checkpoint` lives (whether or not it exists)."""
    return similarity_dir(checkpoint) / f"{Path(checkpoint).stem}-{view}.json"


def probe_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(".probe.json")


def shipped_similarity(checkpoint: str | Path, sha256: str | None = None) -> dict[str, SimilarityResult]:
    """The shipped results of `checkpoint` by view (in `VIEWS` order); those of another sha256 are
    left out, and so is a damaged file (the page offers to recompute instead)."""
    out: dict[str, SimilarityResult] = {}
    for view in VIEWS:
        path = similarity_path(checkpoint, view)
        if not path.is_file():
            continue
        try:
            result = SimilarityResult.load(path)
        except CheckpointError:
            continue
        if sha256 and result.ancestry.get("sha256") and result.ancestry["sha256"] != sha256:
            continue
        out[view] = result
    return out


def view_of(result: SimilarityResult) -> str:
    """The view name of a result: its method, `cka-update` for CKA of residual updates."""
    if result.method == "cka" and result.settings.get("cka_of") == "update":
        return "cka-update"
    return result.method
