"""Therapists' photos: checked, re-encoded without their metadata and kept in the database under their content hash,
so every node serves the same bytes and no page loads an image from anywhere else (a remote image would tell a
third party who looked at whom)."""

from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory.models import Photo

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a header declaring more is refused before any decoding: a small file can claim gigapixels
MAX_SIDE = 600
ACCEPTED = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}


class PhotoError(ValueError):
    """An upload that cannot be a photo, with the message to show."""


def prepare(data: bytes) -> bytes:
    """An uploaded image as stored: a JPEG of at most 600x600, upright, with no EXIF or other metadata. Raises
    PhotoError for anything else than a JPEG, PNG or WebP of at most 5 MB and 40 megapixels."""
    if len(data) > MAX_BYTES:
        raise PhotoError(f"The photo is {len(data) / 1024 / 1024:.1f} MB; the limit is {MAX_BYTES // 1024 // 1024} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ACCEPTED:
                    raise PhotoError("Upload a JPEG, PNG or WebP image.")
                if image.width * image.height > MAX_PIXELS:
                    raise PhotoError(f"The image is {image.width}x{image.height} pixels; the limit is "
                                     f"{MAX_PIXELS // 1_000_000} megapixels.")
                upright = ImageOps.exif_transpose(image)
                upright.thumbnail((MAX_SIDE, MAX_SIDE))
                flat = Image.new("RGB", upright.size, "white")  # transparency on white, not black
                flat.paste(upright, mask=upright.getchannel("A") if "A" in upright.getbands() else None)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError("This file is not an image we can read (JPEG, PNG or WebP).") from None
    except OSError as exc:
        raise PhotoError(f"The image is damaged ({exc}).") from None
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=85, optimize=True)  # a new file: no EXIF, GPS or comments carried over
    return out.getvalue()


def store(session: Session, jpeg: bytes) -> str:
    """Keep a prepared photo (once per content) and return its digest, the name it is served under."""
    digest = hashlib.sha256(jpeg).hexdigest()
    if session.get(Photo, digest) is None:
        session.add(Photo(digest=digest, data=jpeg))
    return digest


def photo_bytes(session: Session, digest: str) -> bytes | None:
    """A stored photo's JPEG bytes, or None."""
    return session.scalar(select(Photo.data).where(Photo.digest == digest))
