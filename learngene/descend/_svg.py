"""A tiny dependency-free SVG line chart (the GPU box and CI have no plotting library for static files)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#444444", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 400, 60, 190, 36, 48


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str, x_label: str,
               y_label: str, log_x: bool = False, dashed: Sequence[str] = ()) -> str:
    """SVG text of a line chart; `series` = [(name, xs, ys)]; NaN points are skipped."""
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
    if not pts:
        pts = [(0.0, 0.0), (1.0, 1.0)]

    def tx(v: float) -> float:
        return math.log10(v) if log_x else v

    x_lo, x_hi = min(tx(p[0]) for p in pts), max(tx(p[0]) for p in pts)
    y_lo, y_hi = min(p[1] for p in pts), max(p[1] for p in pts)
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1), (y_hi if y_hi > y_lo else y_lo + 1)
    pad = 0.05 * (y_hi - y_lo)
    y_lo, y_hi = y_lo - pad, y_hi + pad
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + (tx(v) - x_lo) / (x_hi - x_lo) * pw

    def py(v: float) -> float:
        return TOP + (1 - (v - y_lo) / (y_hi - y_lo)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for v in _ticks(y_lo, y_hi):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#eee"/>'
                   f'<text x="{LEFT - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    xs_all = sorted({p[0] for p in pts})
    x_ticks = xs_all if (log_x or len(xs_all) <= 8) else [10 ** t if log_x else t for t in _ticks(x_lo, x_hi)]
    for v in x_ticks:
        out.append(f'<text x="{px(v):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{v:g}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 10}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="14" y="{TOP + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {TOP + ph / 2})">'
               f'{escape(y_label)}</text>')
    for i, (name, xs, ys) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if name in dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True) if math.isfinite(y))
        if path:
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
            out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>'
                    for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        ly = TOP + 14 + 18 * i
        out.append(f'<line x1="{W - RIGHT + 12}" x2="{W - RIGHT + 36}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/><text x="{W - RIGHT + 42}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
