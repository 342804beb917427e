"""Vectorised drawing primitives for the procedural "shapes" data set.

Shapes are implicit functions: each returns an (approximate) signed distance `d` on a batch of local
coordinate grids, negative inside, in *local units* (the shape fits in a disk of radius ~1). Patterns
return a weight `t` in [0, 1] of the second colour inside the shape. Everything works on whole
batches; edges are anti-aliased with a one-pixel linear ramp.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def soft(v: Tensor, eps: Tensor | float) -> Tensor:
    """Anti-aliased step: 1 where v >> 0, 0 where v << 0, a linear ramp of width `eps` between."""
    return (0.5 + v / eps).clamp_(0.0, 1.0)


def _box(x: Tensor, y: Tensor, hx: float, hy: float) -> Tensor:
    """Signed distance of an axis-aligned box with half extents (hx, hy), centred at 0."""
    qx, qy = x.abs() - hx, y.abs() - hy
    outside = torch.hypot(qx.clamp(min=0), qy.clamp(min=0))
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _polygon(x: Tensor, y: Tensor, n: int, radius: float, rot: float = -math.pi / 2) -> Tensor:
    """Regular n-gon (circumradius `radius`) as the max of its edge half-plane distances."""
    inradius = radius * math.cos(math.pi / n)
    d = None
    for k in range(n):
        a = rot + math.pi / n + 2 * math.pi * k / n
        dk = x * math.cos(a) + y * math.sin(a) - inradius
        d = dk if d is None else torch.maximum(d, dk)
    return d


def sdf_disk(x: Tensor, y: Tensor) -> Tensor:
    return torch.hypot(x, y) - 0.9


def sdf_ring(x: Tensor, y: Tensor) -> Tensor:
    return (torch.hypot(x, y) - 0.66).abs() - 0.27


def sdf_square(x: Tensor, y: Tensor) -> Tensor:
    return _box(x, y, 0.75, 0.75)


def sdf_triangle(x: Tensor, y: Tensor) -> Tensor:
    return _polygon(x, y + 0.1, 3, 1.05)


def sdf_cross(x: Tensor, y: Tensor) -> Tensor:
    return torch.minimum(_box(x, y, 0.92, 0.3), _box(x, y, 0.3, 0.92))


def sdf_star(x: Tensor, y: Tensor) -> Tensor:
    """Five-pointed star from a triangle wave in polar angle (approximate distance)."""
    r = torch.hypot(x, y)
    w = torch.remainder(torch.atan2(y, x) * (5 / (2 * math.pi)) + 0.25, 1.0)
    rad = 0.4 + 0.58 * (w - 0.5).abs() * 2
    return (r - rad) * 0.6


def sdf_crescent(x: Tensor, y: Tensor) -> Tensor:
    x = x + 0.2
    return torch.maximum(torch.hypot(x, y) - 0.9, 0.68 - torch.hypot(x - 0.5, y))


def sdf_half_disk(x: Tensor, y: Tensor) -> Tensor:
    cy = y - 0.35
    return torch.maximum(torch.hypot(x, cy) - 0.98, cy)


def sdf_l_shape(x: Tensor, y: Tensor) -> Tensor:
    upright = _box(x + 0.45, y, 0.28, 0.9)
    foot = _box(x - 0.05, y - 0.62, 0.78, 0.28)
    return torch.minimum(upright, foot)


def sdf_arrow(x: Tensor, y: Tensor) -> Tensor:
    shaft = _box(x + 0.38, y, 0.55, 0.2)
    head = torch.maximum(0.1 - x, torch.maximum(0.6 * (x - 0.95) + 0.8 * y, 0.6 * (x - 0.95) - 0.8 * y))
    return torch.minimum(shaft, head)


SHAPE_FNS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "disk": sdf_disk,
    "ring": sdf_ring,
    "square": sdf_square,
    "triangle": sdf_triangle,
    "cross": sdf_cross,
    "star": sdf_star,
    "crescent": sdf_crescent,
    "half-disk": sdf_half_disk,
    "L-shape": sdf_l_shape,
    "arrow": sdf_arrow,
}


def _fract(v: Tensor) -> Tensor:
    """Fractional part in [0, 1) (unlike `torch.frac`, also for negative values)."""
    return torch.remainder(v, 1.0)


def _wave(v: Tensor) -> Tensor:
    """Distance-like triangle wave of period 1: +0.25 at half-integers, -0.25 at integers."""
    return (_fract(v) - 0.5).abs() - 0.25


def pattern_stripes(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    return soft(_wave(y / period + phase) * period, eps)


def pattern_checker(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    a = _fract(x / period + phase) - 0.5
    b = _fract(y / period + phase) - 0.5
    dist = torch.minimum(a.abs(), b.abs()) * period
    return soft(torch.sign(a * b) * dist, eps)


def pattern_dots(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    a = _fract(x / period + phase) - 0.5
    b = _fract(y / period + phase) - 0.5
    return soft(0.3 * period - torch.hypot(a, b) * period, eps)


def pattern_rings(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    return soft(_wave(torch.hypot(x, y) / period + phase) * period, eps)


def pattern_waves(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    yw = y + 0.22 * torch.sin(x * (2 * math.pi / 0.9) + phase * 2 * math.pi)
    return soft(_wave(yw / period + phase) * period, eps)


def pattern_two_tone(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    return soft(x, eps)


def pattern_grid(x: Tensor, y: Tensor, period: Tensor, phase: Tensor, eps: Tensor) -> Tensor:
    a = (_fract(x / period + phase) - 0.5).abs()
    b = (_fract(y / period + phase) - 0.5).abs()
    width = torch.maximum(0.09 / period, 0.6 * eps / period)
    return soft((torch.maximum(a, b) - (0.5 - width)) * period, eps)


# Patterns that need neither coordinates nor extra inputs are handled by the renderer:
# "solid" (t = 0), "hollow" (an outline: changes the alpha) and "speckled" (random blobs).
PATTERN_FNS: dict[str, Callable[..., Tensor] | None] = {
    "solid": None,
    "striped": pattern_stripes,
    "checkered": pattern_checker,
    "dotted": pattern_dots,
    "concentric": pattern_rings,
    "hollow": None,
    "wavy": pattern_waves,
    "two-tone": pattern_two_tone,
    "grid": pattern_grid,
    "speckled": None,
}


def speckle(n: int, size: int, gen: torch.Generator) -> Tensor:
    """Random blob field (n, size, size) in [0, 1] from upsampled low-resolution noise."""
    noise = torch.randn(n, 1, 7, 7, generator=gen)  # (n, 1, 7, 7)
    field = F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    return (0.5 + 2.5 * field[:, 0]).clamp_(0.0, 1.0)


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """Vectorised HSV -> RGB for (B,) tensors in [0, 1]; returns (B, 3)."""
    k = torch.tensor([5.0, 3.0, 1.0])
    kk = torch.remainder(k[None] + h[:, None] * 6.0, 6.0)  # (B, 3)
    ramp = torch.minimum(kk, 4.0 - kk).clamp(0.0, 1.0)
    return v[:, None] - v[:, None] * s[:, None] * ramp
