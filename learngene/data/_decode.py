"""Every image mode Pillow reads, made into 8-bit RGB correctly or refused by name.

Pillow's own `convert("RGB")` clips 16- and 32-bit values at 255 (a 16-bit PNG turns almost all white)
and drops transparency without looking at it. Here:

* 8-bit modes (1, L, P, RGB, CMYK, YCbCr, RGBX, LAB, HSV) convert as Pillow converts them;
* 16-bit grey (I;16, I;16L, I;16B, I;16N) is scaled from 0..65535 to 0..255;
* 32-bit integers (I) are read as 8-bit when every value is in 0..255, as 16-bit when in 0..65535, and
  refused otherwise; 32-bit floats (F) as fractions when in 0..1, as 8-bit values when in 0..255, and
  refused otherwise (NaN or infinity included);
* transparency (RGBA, LA, PA, La, RGBa, a palette or grey image with a transparent colour) is composited
  over a white background, so a transparent pixel shows as white, not as whatever colour it hides;
* anything else is refused, naming the mode.

`to_rgb` returns the RGB image or the reason it was refused (a short phrase for the skipped-files list).
"""

from __future__ import annotations

import numpy as np

BACKGROUND = (255, 255, 255)  # what transparent pixels show
_PLAIN = {"1", "L", "P", "RGB", "CMYK", "YCbCr", "RGBX", "LAB", "HSV"}
_ALPHA = {"RGBA", "LA", "PA", "La", "RGBa"}
_SIXTEEN = {"I;16", "I;16L", "I;16B", "I;16N"}


def _grey(values: np.ndarray, scale: float):
    from PIL import Image

    scaled = np.clip(np.rint(values.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L").convert("RGB")


def _wide(im, mode: str):
    """A 16-bit, 32-bit integer or 32-bit float grey image as RGB, or the reason it is refused."""
    values = np.asarray(im)
    if values.size == 0:
        return f"{mode} image without pixels"
    if mode in _SIXTEEN:
        return _grey(values, 255 / 65535)
    if mode == "F" and not np.isfinite(values).all():
        return "32-bit float image holding NaN or infinity"
    low, high = float(values.min()), float(values.max())
    if low < 0:
        return f"{mode} image with negative values (down to {low:g})"
    if mode == "F" and high <= 1:
        return _grey(values, 255)
    if high <= 255:
        return _grey(values, 1)
    if mode == "I" and high <= 65535:
        return _grey(values, 255 / 65535)
    kind = "32-bit float" if mode == "F" else "32-bit integer"
    return f"{kind} image with values up to {high:g} (beyond {'0..255' if mode == 'F' else '0..65535'})"


def _composite(im):
    from PIL import Image

    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(im):
    """`im` (a Pillow image) as an 8-bit RGB image, or a string saying why it is refused (see the module doc)."""
    mode = im.mode
    if mode in _SIXTEEN or mode in ("I", "F"):
        return _wide(im, mode)
    if mode in _ALPHA or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        return _composite(im)
    if mode in _PLAIN:
        return im if mode == "RGB" else im.convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError):
        return f"unsupported image mode {mode}"
