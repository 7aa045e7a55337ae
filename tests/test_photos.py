"""Listing photos: what an upload becomes (checked against Pillow reading the result back), what is refused, and how
a photo is served and shown."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory import photos
from directory.imports.csv_writing import listing_values
from directory.models import Listing, Photo
from helpers import csrf_token


def _image_bytes(size: tuple[int, int], format: str, mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red" if mode != "1" else 0).save(out, format, **save)
    return out.getvalue()


def test_an_upload_becomes_an_upright_jpeg_of_at_most_600_pixels_without_metadata() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; the picture must be rotated to stand upright
    exif[0x010F] = "Camera maker"
    exif[0x8825] = {1: "N", 2: (40.0, 44.0, 55.0)}  # GPS latitude: where the photo was taken
    original = _image_bytes((2000, 1500), "JPEG", exif=exif.tobytes())
    stored = Image.open(io.BytesIO(photos.prepare(original)))
    assert stored.format == "JPEG" and stored.size == (450, 600)  # rotated a quarter turn, then scaled down
    assert dict(stored.getexif()) == {} and "exif" not in stored.info


def test_a_transparent_png_and_a_webp_are_accepted() -> None:
    png = Image.open(io.BytesIO(photos.prepare(_image_bytes((300, 200), "PNG", mode="RGBA"))))
    assert png.size == (300, 200) and png.mode == "RGB"
    transparent = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(transparent, "PNG")
    assert Image.open(io.BytesIO(photos.prepare(transparent.getvalue()))).getpixel((5, 5))[0] > 240  # white, not black
    assert Image.open(io.BytesIO(photos.prepare(_image_bytes((64, 64), "WEBP")))).size == (64, 64)


@pytest.mark.parametrize(("data", "message"), [
    (b"not an image at all", "not an image"),
    (_image_bytes((50, 50), "GIF"), "JPEG, PNG or WebP"),
    (b"\xff\xd8" + b"\x00" * (5 * 1024 * 1024), "the limit is 5 MB"),
    # 50 megapixels in a 6 KB file: refused from its header, before anything is decoded.
    (_image_bytes((10_000, 5_000), "PNG", mode="1"), "the limit is 40 megapixels"),
    (_image_bytes((100, 100), "PNG")[:60], "damaged"),
])
def test_what_is_not_a_photo_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(photos.PhotoError) as refused:
        photos.prepare(data)
    assert message in str(refused.value)


def _edit(admin_client: FlaskClient, listing: Listing, **files: object) -> tuple[int, str]:
    page = admin_client.get(f"/admin/listings/{listing.id}/edit").get_data(as_text=True)
    form = {**listing_values(listing), "csrf_token": csrf_token(page), **files}
    response = admin_client.post(f"/admin/listings/{listing.id}/edit", data=form, content_type="multipart/form-data")
    return response.status_code, response.get_data(as_text=True)


def test_an_admin_uploads_a_photo_that_is_served_cached_and_shown_on_the_card(
        admin_client: FlaskClient, session: Session, app: Flask) -> None:
    listing = session.scalars(select(Listing).where(Listing.published, Listing.photo == "", Listing.in_person)
                              .order_by(Listing.id)).first()
    status, _ = _edit(admin_client, listing, photo=(io.BytesIO(_image_bytes((800, 800), "PNG")), "me.png"))
    assert status == 302
    session.expire_all()
    digest = session.get(Listing, listing.id).photo
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    served = admin_client.get(f"/photos/{digest}.jpg")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert "immutable" in served.headers["Cache-Control"] and "max-age=31536000" in served.headers["Cache-Control"]
    assert Image.open(io.BytesIO(served.data)).size == (600, 600)
    assert served.data == session.get(Photo, digest).data
    page = admin_client.get("/", query_string={"postcode": listing.postcode, "radius": 5, "format": "in_person",
                                               "per_page": 100}).get_data(as_text=True)
    assert f'src="/photos/{digest}.jpg" alt="Photo of {listing.name}"' in page
    other = session.scalars(select(Listing).where(Listing.published, Listing.photo == "", Listing.id != listing.id)
                            .order_by(Listing.id)).first()
    initials = "".join(word[0] for word in (other.name.split()[0], other.name.split()[-1])).upper()
    assert f'<span class="avatar large" aria-hidden="true">{initials}</span>' in admin_client.get(
        f"/therapists/{other.slug}").get_data(as_text=True)
    status, _ = _edit(admin_client, listing, remove_photo="1")
    session.expire_all()
    assert status == 302 and session.get(Listing, listing.id).photo == ""
    assert admin_client.get("/photos/" + "0" * 64 + ".jpg").status_code == 404
    assert admin_client.get("/photos/not-a-digest.jpg").status_code == 404


def test_a_refused_upload_keeps_the_listing_as_it_was_and_says_why(admin_client: FlaskClient, session: Session) -> None:
    listing = session.scalars(select(Listing).order_by(Listing.id)).first()
    before = (listing.photo, listing.updated_at)
    status, page = _edit(admin_client, listing, photo=(io.BytesIO(b"GIF89a not really"), "x.gif"))
    assert (status == 400 and "not an image we can read" in page
            and 'aria-invalid="true" aria-describedby="e-photo"' in page)
    session.expire_all()
    again = session.get(Listing, listing.id)
    assert (again.photo, again.updated_at) == before
    assert session.scalar(select(Photo).where(Photo.digest.notin_(select(Listing.photo)))) is None


def test_about_a_third_of_the_sample_has_a_generated_portrait(session: Session) -> None:
    listings = session.scalars(select(Listing)).all()
    with_photo = [listing for listing in listings if listing.photo]
    assert 0.25 < len(with_photo) / len(listings) < 0.45
    digests = {listing.photo for listing in with_photo}
    assert digests == set(session.scalars(select(Photo.digest)))
    for digest in digests:
        assert Image.open(io.BytesIO(session.get(Photo, digest).data)).size == (240, 240)
