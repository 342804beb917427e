"""`LayerView`: the one interface over a model's integral layers (a ViT block, a ResNet stage or block,
a VGG conv + BN + activation: the units a learngene copies whole).

Similarity, selection and inheritance code talk to this view, never to model internals. A view
addresses layers by index; `names` are module paths, so ``model.get_submodule(view.names[i])`` is
``view.get(i)`` and a layer's weights are the state-dict keys that start with ``names[i] + "."``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn

from learngene.errors import ConfigError


def normalize_indices(indices: int | Sequence[int] | None, n: int) -> list[int]:
    """Resolve a layer selection to sorted, unique, non-negative indices (timm's convention).

    Args:
        indices: None for all ``n`` layers; an int ``k`` for the last ``k`` layers; a sequence of
            explicit indices, negative ones counting from the end (``[-1]`` is the last layer).
        n: Number of layers.

    Raises:
        ConfigError: an index outside ``[-n, n)``, ``k`` outside ``[1, n]``, or a non-integer.
    """
    if indices is None:
        return list(range(n))
    if isinstance(indices, bool) or isinstance(indices, (float, str)):
        raise ConfigError(f"layer indices must be ints, a sequence of ints or None, got {indices!r}")
    if isinstance(indices, int):
        if not 1 <= indices <= n:
            raise ConfigError(f"'last k layers' needs 1 <= k <= {n} (the model has {n} layers), got k={indices}")
        return list(range(n - indices, n))
    out = set()
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ConfigError(f"layer indices must be ints, got {i!r} in {list(indices)!r}")
        if not -n <= i < n:
            raise ConfigError(
                f"layer index {i} is out of range: the model has {n} layers, valid indices are "
                f"0..{n - 1} (or {-n}..-1 counting from the end)"
            )
        out.add(i % n)
    return sorted(out)


class _StopForward(Exception):
    """Raised by a hook once the deepest requested layer has run, to skip the rest of the forward."""


def _keep_output(store: dict[int, torch.Tensor], index: int, stop: bool, _module, _inputs, output) -> None:
    store[index] = output
    if stop:
        raise _StopForward


def _keep_update(store: dict[int, torch.Tensor], branch: dict[int, torch.Tensor], index: int, stop: bool,
                 _module, inputs, output) -> None:
    """A layer's update: its residual branch when one was captured, else output - input."""
    if index in branch:
        store[index] = branch.pop(index)
    else:
        x = inputs[0]
        if x.shape != output.shape:
            raise ConfigError(f"layer {index} changes the shape {tuple(x.shape)} -> {tuple(output.shape)}, so "
                              "its update (output - input) is undefined; compare outputs instead")
        store[index] = output - x
    if stop:
        raise _StopForward


class LayerView:
    """Integral layers of one model: index, name, parameters, outputs, replacement.

    Subclasses (one per family) fill in `names` and the family-specific members.
    """

    family: str = ""

    def __init__(self, model: nn.Module, names: list[str]):
        self.model = model
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, {len(self)} layers)"

    def _index(self, i: int) -> int:
        return normalize_indices([i], len(self))[0]

    def get(self, i: int) -> nn.Module:
        """The module of layer ``i`` (negative counts from the end)."""
        return self.model.get_submodule(self.names[self._index(i)])

    def set(self, i: int, module: nn.Module) -> None:
        """Replace layer ``i`` in the model, in place (check `io_shapes` first when mixing models)."""
        parent_name, _, attr = self.names[self._index(i)].rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        setattr(parent, attr, module)

    def num_params(self, i: int) -> int:
        """Number of parameters of layer ``i``."""
        return sum(p.numel() for p in self.get(i).parameters())

    def layer_params(self) -> list[int]:
        """Number of parameters of every layer, in order."""
        return [self.num_params(i) for i in range(len(self))]

    def features(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                 what: str = "output") -> list[torch.Tensor]:
        """Outputs (or updates) of the chosen layers for one forward pass of ``x`` (B, 3, H, W).

        Args:
            x: Float image batch.
            indices: As in `normalize_indices`; outputs come back in ascending layer order.
            what: ``output``, or ``update``: what the layer adds to its input (a ViT block's
                output - input; a ResNet block's residual branch before the sum; a layer without a
                residual path, such as a VGG unit, returns its output).

        Returns:
            One tensor per layer: ViT tokens (B, N, D) with the class token first; CNN maps
            (B, C, H, W). Gradients flow when enabled; the model's train/eval mode is left as is.
        """
        if what not in ("output", "update"):
            raise ConfigError(f"what must be 'output' or 'update', got {what!r}")
        idx = normalize_indices(indices, len(self))
        store: dict[int, torch.Tensor] = {}
        branch: dict[int, torch.Tensor] = {}
        last = idx[-1] if idx else None
        handles = []
        for i in idx:
            layer = self.get(i)
            end = layer if what == "output" else self._branch_end(layer)
            if end is layer:  # the output itself (asked for, or a layer without a residual path)
                handles.append(layer.register_forward_hook(partial(_keep_output, store, i, i == last)))
                continue
            if end is not None:  # a copy: timm's blocks add the shortcut to the branch's tensor in place
                handles.append(end.register_forward_hook(
                    lambda _m, _inp, out, i=i: branch.__setitem__(i, out.clone())))
            handles.append(layer.register_forward_hook(partial(_keep_update, store, branch, i, i == last)))
        try:
            if idx:
                self.model.forward_features(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        assert len(store) == len(idx), f"layers {set(idx) - set(store)} did not run in forward_features"
        return [store[i] for i in idx]

    def io_shapes(self) -> list[tuple[int, int]]:
        """(input, output) channels (CNN) or token width (ViT) of every layer."""
        return [self._io_shape(self.get(i)) for i in range(len(self))]

    def new_layer(self, i: int) -> nn.Module:
        """A freshly initialised module shaped like layer ``i`` (same class, config, device, dtype)."""
        layer = copy.deepcopy(self.get(i))
        with torch.no_grad():
            self._reinit(layer)
        return layer

    def head(self) -> nn.Module:
        """The classifier (timm's ``get_classifier()``)."""
        return self.model.get_classifier()

    def reset_head(self, num_classes: int) -> None:
        """Replace the classifier by a new random one with ``num_classes`` outputs."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.model.reset_classifier(num_classes)
        spec = getattr(self.model, "lg_spec", None)
        if spec is not None:
            self.model.lg_spec = dataclasses.replace(spec, num_classes=num_classes)

    # -- family-specific -------------------------------------------------------------------------
    def _branch_end(self, layer: nn.Module) -> nn.Module | None:
        """The module whose output is the layer's residual branch; None: the update is output - input;
        the layer itself: the layer has no residual path (its update is its output)."""
        return None

    def stem(self) -> dict[str, nn.Module | nn.Parameter]:
        """Modules and parameters before the first integral layer, by attribute name."""
        raise NotImplementedError

    def _io_shape(self, layer: nn.Module) -> tuple[int, int]:
        raise NotImplementedError

    def _reinit(self, layer: nn.Module) -> None:
        raise NotImplementedError
