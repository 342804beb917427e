"""Descendant recipes: which ancestry layers a descendant inherits, and where they go.

A recipe is an ordered list of slots (docs/design.md, "The method"). Each slot either inherits one
integral layer of the ancestry (copied exactly) or is a new random layer shaped like an ancestry
layer. The stem is inherited or random and the head is always new. The baseline of a recipe is the
same architecture with every slot and the stem random.

Placements offered by `Recipe.from_layers`:
- "original": every learngene layer keeps its own index; the other indices are random layers
  (Auto-LG, and Cluster-Learngene's "keep blocks 0-5" when `depth` is smaller than the ancestry).
- "top": random layers at the bottom, the learngene stacked on top (Heur-LG).
- "bottom": the learngene first, random layers above it.

Descendants of any size (narrower, wider or deeper than the ancestry):
- `width` scales the descendant's width against the ancestry's (ViT embedding width in whole heads;
  CNN channels of every stage). Inherited weights are mapped by consistent weight selection: the
  same leading embedding indices / channels in every layer and in the stem, whole attention heads;
  a wider descendant holds the ancestry's weights in the leading block of each matrix, the rest as
  timm initialises it (`learngene.inherit.resize`).
- `fill` says what the layers that are not inherited become: "random" (new layers), "repeat" (a copy
  of the nearest inherited layer of the same shape) or "interpolate" (TLEG: between inherited layers
  a below and b above, ``theta = theta_a + t (theta_b - theta_a)`` with t the slot's relative position;
  outside them the nearest one is repeated). Slots record it ("repeat" / "interpolate" sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from learngene.errors import ConfigError
from learngene.models import ModelSpec

Source = Literal["inherit", "random"]
SlotSource = Literal["inherit", "random", "repeat", "interpolate"]
Placement = Literal["original", "bottom", "top"]
PLACEMENTS: tuple[str, ...] = ("original", "bottom", "top")
Fill = Literal["random", "repeat", "interpolate"]
FILLS: tuple[str, ...] = ("random", "repeat", "interpolate")
MIN_WIDTH, MAX_WIDTH = 0.125, 4.0  # width multipliers offered (relative to the ancestry)
RECIPE_VERSION = 1


@dataclass(frozen=True)
class Slot:
    """One layer of a descendant.

    Attributes:
        source: "inherit" copies ancestry layer `layer`; "random" is a new layer shaped like it;
            "repeat" is another copy of inherited layer `layer`; "interpolate" is
            ``layer + t * (layer_b - layer)`` of two inherited layers' weights.
        layer: the ancestry layer index copied (inherit, repeat), whose shape is taken (random), or
            the lower end of an interpolation.
        layer_b, t: the upper end of an interpolation and the position between them (0 < t < 1).
    """

    source: SlotSource
    layer: int
    layer_b: int | None = None
    t: float | None = None

    def __post_init__(self) -> None:
        if self.source == "interpolate":
            if self.layer_b is None or self.t is None or not 0 < self.t < 1:
                raise ConfigError(f"an interpolate slot needs layer_b and 0 < t < 1, got layer_b={self.layer_b!r}, "
                                  f"t={self.t!r}")
        elif self.layer_b is not None or self.t is not None:
            raise ConfigError(f"only an interpolate slot has layer_b / t (this one is {self.source!r})")

    @property
    def uses(self) -> tuple[int, ...]:
        """Ancestry layers whose weights the slot takes (none for a random slot)."""
        if self.source == "random":
            return ()
        return (self.layer, self.layer_b) if self.source == "interpolate" else (self.layer,)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "layer": self.layer}
        if self.source == "interpolate":
            d.update(layer_b=self.layer_b, t=self.t)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slot:
        _refuse_unknown(d, cls, "slot")
        if d.get("source") not in ("inherit", "random", "repeat", "interpolate"):
            raise ConfigError(f"slot source must be 'inherit', 'random', 'repeat' or 'interpolate', "
                              f"got {d.get('source')!r}")
        for key in ("layer", "layer_b"):
            v = d.get(key)
            if (key == "layer" or v is not None) and (not isinstance(v, int) or isinstance(v, bool)):
                raise ConfigError(f"slot {key} must be an integer, got {v!r}")
        t = d.get("t")
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))):
            raise ConfigError(f"slot t must be a number, got {t!r}")
        return cls(source=d["source"], layer=d["layer"], layer_b=d.get("layer_b"),
                   t=None if t is None else float(t))


def _refuse_unknown(d: Any, cls: type, what: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"a {what} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known - {"version"})
    if unknown:
        raise ConfigError(f"unknown {what} keys {unknown}; known: {sorted(known)}")


def normalize_layers(layers: list[int] | tuple[int, ...], n_layers: int) -> list[int]:
    """Map negative indices (-1 = last) to 0..n_layers-1, keep order, refuse out-of-range/duplicates."""
    out: list[int] = []
    for i in layers:
        j = i + n_layers if i < 0 else i
        if not 0 <= j < n_layers:
            raise ConfigError(f"layer index {i} is out of range: the ancestry has {n_layers} layers "
                              f"(0..{n_layers - 1}, or -1..-{n_layers} from the end)")
        if j in out:
            raise ConfigError(f"layer {j} is listed twice in the learngene layers {list(layers)}")
        out.append(j)
    return out


@dataclass(frozen=True)
class Recipe:
    """How to build one descendant from an ancestry (or its learngene).

    Attributes:
        ancestry: architecture spec of the ancestry model.
        ancestry_layers: number of integral layers of the ancestry.
        slots: the descendant's layers, bottom to top.
        stem: "inherit" copies the ancestry stem (ViT: patch/position embedding, cls token, final
            norm; CNN: stem conv); "random" initialises it afresh.
        num_classes: classes of the descendant task (size of the new head).
        placement: how the recipe was made ("custom" when slots were given directly).
        width: the descendant's width as a multiple of the ancestry's (1.0 = the same).
        fill: what the non-inherited slots were made of ("random", "repeat", "interpolate").
    """

    ancestry: ModelSpec
    ancestry_layers: int
    slots: tuple[Slot, ...]
    stem: Source = "inherit"
    num_classes: int = 5
    placement: Literal["original", "bottom", "top", "custom"] = "custom"
    notes: dict[str, Any] = field(default_factory=dict)
    width: float = 1.0
    fill: Fill = "random"
    layout: tuple[int, ...] | None = None  # a CNN of another depth: its blocks per stage (ResNet)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(self.slots))
        if self.layout is not None:
            object.__setattr__(self, "layout", tuple(int(b) for b in self.layout))
        self.validate()

    def validate(self) -> None:
        if self.ancestry_layers < 1:
            raise ConfigError(f"ancestry_layers must be at least 1, got {self.ancestry_layers}")
        if not self.slots:
            raise ConfigError("a recipe needs at least one slot")
        if self.stem not in ("inherit", "random"):
            raise ConfigError(f"stem must be 'inherit' or 'random', got {self.stem!r}")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes must be at least 2, got {self.num_classes}")
        for p, slot in enumerate(self.slots):
            for layer in (slot.layer, *(() if slot.layer_b is None else (slot.layer_b,))):
                if not 0 <= layer < self.ancestry_layers:
                    raise ConfigError(f"slot {p} refers to ancestry layer {layer}, but the ancestry has "
                                      f"{self.ancestry_layers} layers (0..{self.ancestry_layers - 1})")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or \
                not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ConfigError(f"width must be a multiple of the ancestry's width from {MIN_WIDTH} to {MAX_WIDTH}, "
                              f"got {self.width!r}")
        if self.fill not in FILLS:
            raise ConfigError(f"fill must be one of {list(FILLS)}, got {self.fill!r}")
        if self.layout is not None and (sum(self.layout) != len(self.slots) or min(self.layout) < 1):
            raise ConfigError(f"layout {list(self.layout)} (blocks per stage) must be positive and add up to the "
                              f"{len(self.slots)} slots")
        taken = set(self.inherited_layers)
        for p, slot in enumerate(self.slots):
            if slot.source in ("repeat", "interpolate") and not set(slot.uses) <= taken:
                raise ConfigError(f"slot {p} {slot.source}s ancestry layer(s) {list(slot.uses)}, which the recipe "
                                  f"does not inherit (inherited: {sorted(taken)}): a learngene holds only those")

    @property
    def depth(self) -> int:
        """Number of integral layers of the descendant."""
        return len(self.slots)

    @property
    def inherited_layers(self) -> list[int]:
        """Ancestry layer indices the recipe copies, in slot order."""
        return [s.layer for s in self.slots if s.source == "inherit"]

    @property
    def is_baseline(self) -> bool:
        return self.stem == "random" and all(s.source == "random" for s in self.slots)

    @classmethod
    def from_layers(
        cls, ancestry: ModelSpec, n_layers: int, learngene_layers: list[int] | tuple[int, ...],
        placement: Placement = "original", depth: int | None = None, stem: Source = "inherit",
        num_classes: int = 5, width: float = 1.0, fill: Fill = "random",
        io_shapes: list[tuple[int, int]] | None = None, stages: list[int] | tuple[int, ...] | None = None,
    ) -> Recipe:
        """A recipe that inherits `learngene_layers` (ancestry indices) and fills the rest (see `fill`).

        A random slot at position p takes the shape of ancestry layer p (the last layer where p is
        past the ancestry's depth; ViT blocks all share one shape). With `fill` "repeat" or
        "interpolate", only layers of that same shape are used (`io_shapes`: the ancestry's
        (input, output) widths per layer; None: all layers share one shape, as in a ViT); a slot
        with no such layer stays random.

        `stages` (a ResNet's blocks per stage, e.g. (2, 2, 2, 2)) allows a CNN of another `depth`: each
        stage gets its share of the blocks (at least one). A stage keeps the ancestry's first block (which
        changes the shape) first and its last block last, inherited where they are learngene layers; a
        deeper stage gets new blocks in between, shaped like the last (random, or repeated / interpolated
        with `fill`, TLEG-style between the stage's ends), a shallower one drops blocks before the last.
        Only placement "original" is offered then.
        """
        if fill not in FILLS:
            raise ConfigError(f"fill must be one of {list(FILLS)}, got {fill!r}")
        if placement not in PLACEMENTS:
            raise ConfigError(f"placement must be one of {list(PLACEMENTS)}, got {placement!r}")
        lg = normalize_layers(list(learngene_layers), n_layers)
        if placement == "original":
            lg = sorted(lg)
        depth = n_layers if depth is None else depth
        if stages is not None and depth != n_layers:
            return cls._staged(ancestry, n_layers, lg, placement, depth, stem, num_classes, width, fill, io_shapes,
                               tuple(int(s) for s in stages))
        need = (max(lg) + 1) if (placement == "original" and lg) else len(lg)
        if depth < max(need, 1):
            raise ConfigError(f"depth {depth} is too small for placement {placement!r} of layers {lg}: "
                              f"it needs at least {need}")

        def rand(p: int) -> Slot:
            return Slot("random", min(p, n_layers - 1))

        if placement == "original":
            keep = set(lg)
            slots = [Slot("inherit", p) if p in keep else rand(p) for p in range(depth)]
        elif placement == "top":
            slots = [rand(p) for p in range(depth - len(lg))] + [Slot("inherit", i) for i in lg]
        else:
            slots = [Slot("inherit", i) for i in lg] + [rand(p) for p in range(len(lg), depth)]
        if fill != "random":
            slots = _filled(slots, fill, io_shapes)
        return cls(ancestry=ancestry, ancestry_layers=n_layers, slots=tuple(slots), stem=stem,
                   num_classes=num_classes, placement=placement, width=float(width), fill=fill)

    @classmethod
    def _staged(cls, ancestry: ModelSpec, n_layers: int, lg: list[int], placement: str, depth: int, stem: Source,
                num_classes: int, width: float, fill: Fill, io_shapes: list[tuple[int, int]] | None,
                stages: tuple[int, ...]) -> Recipe:
        """`from_layers` for a CNN of another depth (see there)."""
        if sum(stages) != n_layers or min(stages, default=0) < 1:
            raise ConfigError(f"stages {list(stages)} must be positive and add up to the ancestry's {n_layers} layers")
        if placement != "original":
            raise ConfigError(f"a CNN descendant of another depth keeps each layer in its stage: use placement "
                              f"'original' (got {placement!r})")
        if depth < len(stages):
            raise ConfigError(f"depth {depth} is too small: a CNN descendant needs at least one block in each of its "
                              f"{len(stages)} stages")
        layout = [max(1, round(a * depth / n_layers)) for a in stages]
        while sum(layout) > depth:  # rounding: take from the largest stage, give to the smallest
            layout[layout.index(max(layout))] -= 1
        while sum(layout) < depth:
            layout[layout.index(min(layout))] += 1
        keep, slots, first = set(lg), [], 0
        for a, b in zip(stages, layout, strict=True):
            # the stage's first block (it changes the shape) stays first and its last block stays last;
            # a deeper stage gets its new blocks in between, a shallower one drops blocks before the last
            if b == 1:
                blocks: list[int | None] = [0]
            elif b >= a:
                blocks = list(range(a - 1)) + [None] * (b - a) + [a - 1]
            else:
                blocks = list(range(b - 1)) + [a - 1]
            for k in blocks:
                if k is None:
                    slots.append(Slot("random", first + a - 1))  # a new block, shaped like the stage's last
                else:
                    layer = first + k
                    slots.append(Slot("inherit", layer) if layer in keep else Slot("random", layer))
            first += a
        if fill != "random":
            slots = _filled(slots, fill, io_shapes)
        return cls(ancestry=ancestry, ancestry_layers=n_layers, slots=tuple(slots), stem=stem,
                   num_classes=num_classes, placement=placement, width=float(width), fill=fill,
                   layout=tuple(layout))

    def baseline(self) -> Recipe:
        """The same architecture with every slot and the stem random (the fair comparison)."""
        slots = tuple(Slot("random", s.layer) for s in self.slots)
        return replace(self, slots=slots, stem="random", fill="random",
                       notes={**self.notes, "baseline_of": self.placement})

    def with_classes(self, num_classes: int) -> Recipe:
        return replace(self, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECIPE_VERSION, "ancestry": self.ancestry.to_dict(),
            "ancestry_layers": self.ancestry_layers, "slots": [s.to_dict() for s in self.slots],
            "stem": self.stem, "num_classes": self.num_classes, "placement": self.placement,
            "notes": dict(self.notes), "width": self.width, "fill": self.fill,
            **({"layout": list(self.layout)} if self.layout is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        _refuse_unknown(d, cls, "recipe")
        missing = sorted({"ancestry", "ancestry_layers", "slots"} - set(d))
        if missing:
            raise ConfigError(f"recipe is missing {missing}")
        if d.get("version", RECIPE_VERSION) != RECIPE_VERSION:
            raise ConfigError(f"recipe version {d['version']} is not supported (expected {RECIPE_VERSION})")
        if not isinstance(d["slots"], list):
            raise ConfigError("recipe 'slots' must be a list of {source, layer} objects")
        placement = d.get("placement", "custom")
        if placement not in (*PLACEMENTS, "custom"):
            raise ConfigError(f"unknown placement {placement!r}")
        try:
            spec = ModelSpec.from_dict(d["ancestry"])
        except ConfigError:
            raise
        except (TypeError, KeyError, ValueError) as exc:
            raise ConfigError(f"recipe 'ancestry' is not a valid model spec: {exc}") from exc
        try:
            return cls(ancestry=spec, ancestry_layers=int(d["ancestry_layers"]),
                       slots=tuple(Slot.from_dict(s) for s in d["slots"]), stem=d.get("stem", "inherit"),
                       num_classes=int(d.get("num_classes", 5)), placement=placement,
                       notes=dict(d.get("notes") or {}), width=_number(d.get("width", 1.0), "width"),
                       fill=d.get("fill", "random"),
                       layout=None if d.get("layout") is None else tuple(int(b) for b in d["layout"]))
        except ConfigError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:  # e.g. int("x"), int(inf), dict("x")
            raise ConfigError(f"recipe has a value of the wrong type: {exc}") from exc

    def describe(self, layer_names: list[str] | None = None) -> str:
        """One line per slot, bottom to top, e.g. for the CLI and the UI."""
        def name(i: int) -> str:
            return f" ({layer_names[i]})" if layer_names and i < len(layer_names) else ""

        n_inh = len(self.inherited_layers)
        n_rand = sum(s.source == "random" for s in self.slots)
        if "vgg" in self.ancestry.arch.lower():  # a VGG begins with its first conv unit: nothing to inherit
            stem = "none (a VGG starts with its first conv unit)"
        else:
            stem = "inherited from the ancestry" if self.stem == "inherit" else "random"
        made = "".join(f", {n} {word}" for n, word in (
            (sum(s.source == "repeat" for s in self.slots), "repeated"),
            (sum(s.source == "interpolate" for s in self.slots), "interpolated")) if n)
        size = "" if self.width == 1.0 else f", width {self.width:g}x the ancestry's"
        lines = [f"descendant of {self.ancestry.arch} ({self.ancestry_layers} layers): {self.depth} slots, "
                 f"{n_inh} inherited, {n_rand} random{made}, placement {self.placement}{size}",
                 f"  stem     {stem}"]
        for p, s in enumerate(self.slots):
            if s.source == "inherit":
                lines.append(f"  slot {p:<3} inherit ancestry layer {s.layer}{name(s.layer)}")
            elif s.source == "repeat":
                lines.append(f"  slot {p:<3} repeat  ancestry layer {s.layer}{name(s.layer)}")
            elif s.source == "interpolate":
                lines.append(f"  slot {p:<3} interp  layers {s.layer} -> {s.layer_b}, t = {s.t:.2f}")
            else:
                lines.append(f"  slot {p:<3} random  (shaped like ancestry layer {s.layer}{name(s.layer)})")
        lines.append(f"  head     new, {self.num_classes} classes")
        return "\n".join(lines)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"recipe {what} must be a number, got {value!r}")
    return float(value)


def _filled(slots: list[Slot], fill: Fill, io: list[tuple[int, int]] | None) -> list[Slot]:
    """Replace random slots by repeated or interpolated inherited layers of the same shape."""
    def shape(layer: int) -> tuple[int, int] | None:
        return None if io is None else tuple(io[layer])

    out = list(slots)
    inherited = [(p, s.layer) for p, s in enumerate(slots) if s.source == "inherit"]
    for p, slot in enumerate(slots):
        if slot.source != "random":
            continue
        same = [(q, layer) for q, layer in inherited if shape(layer) == shape(slot.layer)]
        if not same:
            continue  # no inherited layer of this shape: the slot stays random
        below = [(q, layer) for q, layer in same if q < p]
        above = [(q, layer) for q, layer in same if q > p]
        if fill == "interpolate" and below and above:
            (qa, la), (qb, lb) = below[-1], above[0]
            out[p] = Slot("interpolate", la, layer_b=lb, t=round((p - qa) / (qb - qa), 6))
        else:
            nearest = min(same, key=lambda item: (abs(item[0] - p), item[0] > p))  # ties: the lower one
            out[p] = Slot("repeat", nearest[1])
    return out
