"""Any PIL image -> 8-bit RGB, scaling high-bit-depth images instead of clipping them."""
import numpy as np
from PIL import Image

from .raw import DataError

SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def to_rgb8(img: Image.Image, where: str) -> Image.Image:
    """8-bit RGB. PIL's own convert("RGB") clips values above 255, which turns a 16-bit image white; here
    16-bit values keep their top 8 bits (v >> 8, so 65535 -> 255), mode "I" is read as 16-bit when its
    values fit (older Pillow opens 16-bit PNGs as "I"), and mode "F" must hold values in [0, 1]. Values
    outside those ranges have no defined scale: an error naming the file, rather than a guess."""
    if img.mode in SIXTEEN_BIT or img.mode in ("I", "F"):
        a = np.asarray(img)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if img.mode == "F":
            if lo < 0 or hi > 1:
                raise DataError(f"{where}: float image with values in [{lo:g}, {hi:g}]; only [0, 1] has a "
                                "defined scale: save it as 8- or 16-bit")
            a = np.round(a * 255)
        else:
            if lo < 0 or hi > 65535:
                raise DataError(f"{where}: 32-bit integer image with values in [{lo:g}, {hi:g}]; only 0..65535 "
                                "(16-bit) has a defined scale: save it as 8- or 16-bit")
            a = a.astype(np.uint32) >> 8
        img = Image.fromarray(a.astype(np.uint8), "L")
    return img.convert("RGB")
