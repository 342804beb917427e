"""The learngene file: the chosen ancestry layers (and the ancestry stem) as one `.safetensors`.

Tensors are stored under `layers/<i>/<state key>` and `stem/<name>/<state key>` (a stem entry that
is a bare parameter is stored as `stem/<name>`). The safetensors header carries JSON metadata under
the key "learngene": the ancestry's architecture spec and sha256, the layer indices and names, the
condensing method and scores, the layers' input/output shapes and parameter counts. The stem is
always stored (it is small); a recipe decides whether a descendant inherits it. A descendant can be
built from this file alone: the architecture comes from the spec, the weights from the tensors.

Loading trusts nothing in the file: the spec's sizes are bounded (as a model card's), the layer indices
must lie within the ancestry's layers, and tensors holding NaN or infinity are refused, naming them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from learngene.errors import CheckpointError, ConfigError, check_file
from learngene.models import ModelSpec, family_of, layer_view, non_finite
from learngene.models.checkpoint import non_finite_message
from learngene.runlog import commit_files

MAX_LAYERS = 1_024  # integral layers an ancestry may have (a VGG unit, a ResNet block, a ViT block each)

FORMAT = "learngene/1"
META_KEY = "learngene"
StemState = dict[str, "dict[str, torch.Tensor] | torch.Tensor"]


def _state_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in module.state_dict().items()}


def stem_state(model: nn.Module) -> StemState:
    """Copies of the stem's weights: a state dict per stem module, a tensor per bare parameter."""
    out: StemState = {}
    for name, part in layer_view(model).stem().items():
        if isinstance(part, nn.Module):
            out[name] = _state_of(part)
        else:
            out[name] = part.detach().cpu().clone().contiguous()
    return out


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _stem_params(state: StemState, model: nn.Module | None = None) -> int:
    """Parameters in the stem (buffers such as BN running stats are not parameters)."""
    if model is not None:
        total = 0
        for part in layer_view(model).stem().values():
            total += sum(p.numel() for p in part.parameters()) if isinstance(part, nn.Module) else part.numel()
        return total
    return sum(sum(v.numel() for k, v in s.items() if "running_" not in k and "num_batches" not in k)
               if isinstance(s, dict) else s.numel() for s in state.values())


@dataclass
class LearngeneFile:
    """A loaded learngene: ancestry layers by index, the ancestry stem, and where they came from."""

    spec: ModelSpec
    n_layers: int
    layers: tuple[int, ...]
    layer_names: tuple[str, ...]
    layer_states: dict[int, dict[str, torch.Tensor]]
    stem: StemState
    method: str = "manual"
    scores: list[float] | None = None
    ancestry_sha256: str = ""
    created: str = ""
    family: str = ""
    io_shapes: list[Any] = field(default_factory=list)
    layer_params: dict[int, int] = field(default_factory=dict)
    stem_params: int = 0
    ancestry_params: int = 0
    ancestry_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def layer_state(self, i: int) -> dict[str, torch.Tensor]:
        """The stored weights of ancestry layer `i`; `ConfigError` when the learngene lacks it."""
        if i not in self.layer_states:
            raise ConfigError(f"the learngene holds ancestry layers {list(self.layers)}, not layer {i}; "
                              "choose a recipe that inherits only those layers")
        return self.layer_states[i]

    @property
    def num_params(self) -> int:
        """Parameters of the learngene layers (stem excluded)."""
        return sum(self.layer_params.get(i, 0) for i in self.layers)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The flat tensor dict stored in the file."""
        out = {f"layers/{i}/{k}": v for i in self.layers for k, v in self.layer_states[i].items()}
        for name, s in self.stem.items():
            if isinstance(s, dict):
                out.update({f"stem/{name}/{k}": v for k, v in s.items()})
            else:
                out[f"stem/{name}"] = s
        return out

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "spec": self.spec.to_dict(), "n_layers": self.n_layers,
            "layers": list(self.layers), "layer_names": list(self.layer_names), "method": self.method,
            "scores": self.scores, "ancestry_sha256": self.ancestry_sha256, "created": self.created,
            "family": self.family, "io_shapes": self.io_shapes,
            "layer_params": {str(k): v for k, v in self.layer_params.items()},
            "stem_params": self.stem_params, "ancestry_params": self.ancestry_params,
            "ancestry_bytes": self.ancestry_bytes, "extra": self.extra,
            "stem_entries": {n: ("module" if isinstance(s, dict) else "tensor") for n, s in self.stem.items()},
        }


def _jsonable_shapes(shapes: Any) -> Any:
    if isinstance(shapes, (list, tuple)):
        return [_jsonable_shapes(s) for s in shapes]
    if isinstance(shapes, torch.Size):
        return list(shapes)
    return int(shapes) if isinstance(shapes, int) else shapes


def learngene_from_model(
    ancestry: nn.Module, layers: list[int], *, method: str = "manual", scores: list[float] | None = None,
    ancestry_sha256: str = "", extra: dict[str, Any] | None = None,
) -> LearngeneFile:
    """Extract a learngene (copies of `layers` and the stem) from an ancestry model, in memory."""
    from learngene.inherit.recipe import normalize_layers

    view = layer_view(ancestry)
    n = len(view.names)
    idx = normalize_layers(list(layers), n)
    if not idx:
        raise ConfigError("a learngene needs at least one layer")
    sd = ancestry.state_dict()
    stem = stem_state(ancestry)
    return LearngeneFile(
        spec=ancestry.lg_spec, n_layers=n, layers=tuple(sorted(idx)),
        layer_names=tuple(view.names[i] for i in sorted(idx)),
        layer_states={i: _state_of(view.get(i)) for i in sorted(idx)}, stem=stem, method=method,
        scores=None if scores is None else [None if s is None else float(s) for s in scores],
        ancestry_sha256=ancestry_sha256, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        family=family_of(ancestry), io_shapes=_jsonable_shapes(view.io_shapes()),
        layer_params={i: view.num_params(i) for i in range(n)}, stem_params=_stem_params(stem, ancestry),
        ancestry_params=sum(p.numel() for p in ancestry.parameters()),
        ancestry_bytes=sum(_nbytes(v) for v in sd.values()), extra=dict(extra or {}),
    )


def save_learngene(
    ancestry: nn.Module, layers: list[int], path: str | os.PathLike, *, method: str = "manual",
    scores: list[float] | None = None, ancestry_sha256: str = "", extra: dict[str, Any] | None = None,
) -> Path:
    """Write the learngene of `ancestry` (its `layers` and its stem) to `path`, atomically."""
    lg = learngene_from_model(ancestry, layers, method=method, scores=scores,
                              ancestry_sha256=ancestry_sha256, extra=extra)
    return write_learngene(lg, path)


def write_learngene(lg: LearngeneFile, path: str | os.PathLike) -> Path:
    """Write an in-memory learngene to a `.safetensors` file via a temporary file + `os.replace`.

    Raises `CheckpointError` for weights holding NaN or infinity, `StorageError` ("disk full at PATH")
    when the file cannot be written (nothing is left behind then)."""
    from safetensors.torch import save

    path = Path(path)
    tensors = lg.tensors()
    bad = non_finite(tensors)
    if bad:
        raise CheckpointError("not saved: " + non_finite_message(bad, f"the learngene for {path}"))
    commit_files([(path, save(tensors, metadata={"format": FORMAT, META_KEY: json.dumps(lg.metadata())}))])
    lg.path = path
    return path


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    check_file(path, "learngene file", hint="; create one with `python -m learngene inherit --out PATH`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a readable .safetensors file (corrupt or truncated?): {exc}") from exc
    bad = non_finite(tensors)
    if bad:
        raise CheckpointError(non_finite_message(bad, f"learngene file {path}"))
    return tensors, meta


def _layer_indices(m: dict[str, Any]) -> tuple[int, tuple[int, ...]]:
    """The ancestry's layer count and the stored layer indices, each within bounds."""
    n = m["n_layers"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LAYERS:
        raise CheckpointError(f"n_layers must be a whole number from 1 to {MAX_LAYERS}, got {n!r}")
    layers = m["layers"]
    if (not isinstance(layers, list) or not layers or len(layers) > n
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in layers)):
        raise CheckpointError(f"layers must be 1 to {n} distinct indices from 0 to {n - 1}, got {str(layers)[:80]}")
    if len(set(layers)) != len(layers):
        raise CheckpointError(f"layers {layers} names a layer twice")
    return n, tuple(layers)


def load_learngene(path: str | os.PathLike) -> LearngeneFile:
    """Read a learngene file; `CheckpointError` when it is missing, corrupt or not a learngene."""
    path = Path(path)
    tensors, meta = _read(path)
    if META_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not a learngene (no learngene metadata); "
                              "if it is an ancestry checkpoint, pass it with --ancestry")
    try:
        m = json.loads(meta[META_KEY])
        if m.get("format") != FORMAT:
            raise CheckpointError(f"{path} has learngene format {m.get('format')!r}, expected {FORMAT!r}")
        n_layers, layers = _layer_indices(m)
        layer_states = {i: {} for i in layers}
        stem: StemState = {n: ({} if kind == "module" else None) for n, kind in m["stem_entries"].items()}
        for key, t in tensors.items():
            kind, _, rest = key.partition("/")
            if kind == "layers":
                i, _, k = rest.partition("/")
                if not i.isdigit() or int(i) not in layer_states:
                    raise CheckpointError(f"tensor {key!r} belongs to no stored layer")
                layer_states[int(i)][k] = t
            elif kind == "stem" and isinstance(stem.get(rest.partition("/")[0]), dict) and "/" in rest:
                name, _, k = rest.partition("/")
                stem[name][k] = t
            elif kind == "stem" and rest in stem:
                stem[rest] = t
            else:
                raise CheckpointError(f"unexpected tensor {key!r}")
        empty = [i for i, s in layer_states.items() if not s] + [n for n, s in stem.items() if s is None]
        if empty:
            raise CheckpointError(f"tensors missing for {empty}")
        return LearngeneFile(
            spec=ModelSpec.from_dict(m["spec"]), n_layers=n_layers, layers=layers,
            layer_names=tuple(m["layer_names"]), layer_states=layer_states, stem=stem,
            method=m.get("method", "manual"), scores=m.get("scores"), ancestry_sha256=m.get("ancestry_sha256", ""),
            created=m.get("created", ""), family=m.get("family", ""), io_shapes=m.get("io_shapes", []),
            layer_params={int(k): int(v) for k, v in m.get("layer_params", {}).items()},
            stem_params=int(m.get("stem_params", 0)), ancestry_params=int(m.get("ancestry_params", 0)),
            ancestry_bytes=int(m.get("ancestry_bytes", 0)), extra=m.get("extra") or {}, path=path,
        )
    except (CheckpointError, ConfigError) as exc:
        raise CheckpointError(f"{path} is a damaged learngene file: {exc}") from exc
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise CheckpointError(f"{path} is a damaged learngene file (bad metadata: {exc!r})") from exc


@dataclass(frozen=True)
class SizeReport:
    """How big a learngene is against its ancestry."""

    layer_params: int
    stem_params: int
    ancestry_params: int
    learngene_bytes: int
    ancestry_bytes: int
    file_bytes: int | None

    @property
    def learngene_params(self) -> int:
        """Layers + stem, i.e. everything the file stores."""
        return self.layer_params + self.stem_params

    @property
    def param_fraction(self) -> float:
        return self.learngene_params / max(self.ancestry_params, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"layer_params": self.layer_params, "stem_params": self.stem_params,
                "learngene_params": self.learngene_params, "ancestry_params": self.ancestry_params,
                "param_fraction": self.param_fraction, "learngene_bytes": self.learngene_bytes,
                "ancestry_bytes": self.ancestry_bytes, "file_bytes": self.file_bytes}

    def lines(self) -> str:
        def mb(b: int) -> str:
            return f"{b / 2**20:.2f} MiB"

        out = [f"learngene layers: {self.layer_params:,} parameters",
               f"stem:             {self.stem_params:,} parameters",
               f"learngene total:  {self.learngene_params:,} parameters, {mb(self.learngene_bytes)} "
               f"({100 * self.param_fraction:.1f}% of the ancestry's {self.ancestry_params:,} parameters, "
               f"{mb(self.ancestry_bytes)})"]
        if self.file_bytes is not None:
            out.append(f"file on disk:     {mb(self.file_bytes)}")
        return "\n".join(out)


def size_report(learngene: LearngeneFile) -> SizeReport:
    """Parameters and bytes of a learngene against its ancestry (recorded when it was saved)."""
    file_bytes = learngene.path.stat().st_size if learngene.path and Path(learngene.path).exists() else None
    return SizeReport(
        layer_params=learngene.num_params, stem_params=learngene.stem_params,
        ancestry_params=learngene.ancestry_params,
        learngene_bytes=sum(_nbytes(t) for t in learngene.tensors().values()),
        ancestry_bytes=learngene.ancestry_bytes, file_bytes=file_bytes,
    )
