"""Decoding one image file as RGB (PIL), refusing what would decode wrongly or not at all. A module of its own, without
pandas: the training processes that read image folders import it (``convrnn.training.imagefolder``) and, before,
imported pandas with ``datasets.stimuli`` for it (half a second or more each, in every ``zoo train`` process, every
rank of a torchrun and every local worker of ``zoo search``)."""
from __future__ import annotations

import numpy as np

from neurozoo.datasets.errors import DataError


#: PIL modes of more than 8 bits per value, whose ``convert("RGB")`` clips (16- and 32-bit integers: every value above
#: 255 becomes white) or truncates (floats: 0.5 becomes 0) instead of rescaling
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def load_rgb(path, context: str = ""):
    """Decode an image file with PIL as RGB (greyscale, CMYK and palette images become 3 channels); a file that is
    not an image raises ``DataError`` naming it (``context``: what listed it, e.g. the CSV row). So does an image of
    more than 8 bits per value whose values leave 0-255 (a 16-bit PNG, a float TIFF): PIL's (and torchvision's)
    RGB conversion would clip them to white or truncate them to black, silently; and one over PIL's
    decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``), which PIL refuses with an exception of its own."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            if image.mode in _WIDE_MODES:
                _check_8bit_range(image, path, context)
            return image.convert("RGB")
    except DataError:
        raise
    except Image.DecompressionBombError as error:
        raise DataError(f"cannot read image {path}{context}: {error} (PIL refuses images over "
                        f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}); expected a stimulus image, "
                        "resize it first") from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        if isinstance(error, UnidentifiedImageError):
            error = "not an image PIL can decode (corrupt, truncated or another format)"
        raise DataError(f"cannot read image {path}{context}: {error}") from None


def _check_8bit_range(image, path, context: str) -> None:
    """``DataError`` unless the values of a wide-mode image (:data:`_WIDE_MODES`) are whole numbers in 0-255, which
    ``convert("RGB")`` keeps as they are."""
    low, high = image.getextrema()
    whole = image.mode != "F" or bool((np.asarray(image) % 1 == 0).all())
    if 0 <= low and high <= 255 and whole:
        return
    kind = "floating-point" if image.mode == "F" else f"{16 if image.mode.startswith('I;16') else 32}-bit integer"
    raise DataError(f"cannot read image {path}{context}: {kind} values {low:g}..{high:g} (PIL mode {image.mode}); "
                    "expected 8 bits per channel (whole numbers 0-255): converting it to RGB would "
                    f"{'truncate fractions and clip' if image.mode == 'F' else 'clip'} every value above 255 to white; "
                    "save it rescaled to 8 bits (e.g. a 16-bit image divided by 257)")
