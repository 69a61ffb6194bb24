"""bot/media.py: recognising, checking, splitting, composing and fitting images."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib

import pytest
from PIL import Image

from bot import media
from bot.media import MediaError


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 1) -> Image.Image:
    channels = len(mode)
    data = random.Random(seed).randbytes(size[0] * size[1] * channels)
    return Image.frombytes(mode, size, data)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds (almost) no pixel data: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- sniff / inspect


@pytest.mark.parametrize(
    ("fmt", "mime", "ext"),
    [
        ("PNG", "image/png", "png"),
        ("JPEG", "image/jpeg", "jpg"),
        ("WEBP", "image/webp", "webp"),
        ("GIF", "image/gif", "gif"),
    ],
)
def test_accepted_formats_are_recognised_and_measured(fmt: str, mime: str, ext: str) -> None:
    data = encode(Image.new("RGB", (120, 80), (200, 30, 30)), fmt)
    assert media.sniff_mime(data) == mime
    info = media.inspect_image(data)
    assert info == media.ImageInfo(mime=mime, width=120, height=80, ext=ext)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<!DOCTYPE html><html><body>403 Forbidden</body></html>", "HTML"),
        (b"  \n<html><head></head></html>", "HTML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b'{"code": 4, "description": "not found"}', "JSON"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"BM\x36\x00\x00\x00\x00\x00", "BMP"),
        (b"just some words", "plain text"),
    ],
)
def test_non_images_are_refused_saying_what_they_look_like(data: bytes, words: str) -> None:
    assert media.sniff_mime(data) is None
    with pytest.raises(MediaError, match="not an image") as caught:
        media.inspect_image(data)
    assert words in str(caught.value)
    assert "PNG, JPEG, WebP and GIF" in str(caught.value)


def test_zero_bytes_are_refused() -> None:
    with pytest.raises(MediaError, match="empty"):
        media.inspect_image(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(fmt: str) -> None:
    data = encode(noise((256, 256)), fmt)
    with pytest.raises(MediaError, match="damaged"):
        media.inspect_image(data[: len(data) // 2])


def test_a_decompression_bomb_header_is_refused_before_decoding() -> None:
    bomb = png_header_only(100_000, 100_000)  # 10 gigapixels in a few dozen bytes
    assert len(bomb) < 100
    with pytest.raises(MediaError, match="decompression bomb"):
        media.inspect_image(bomb)


def test_an_image_over_our_pixel_limit_is_refused() -> None:
    big = png_header_only(9_000, 9_000)  # 81 Mpx: under Pillow's threshold, over ours
    with pytest.raises(MediaError, match=r"9000x9000.*megapixels"):
        media.inspect_image(big)
    real = encode(Image.new("L", (2_000, 2_000)), "PNG")  # tiny file, 4 Mpx of black
    with pytest.raises(MediaError, match="too large"):
        media.inspect_image(real, max_pixels=1_000_000)
    assert media.inspect_image(real).width == 2_000


# --------------------------------------------------------------------------- grids


def test_split_then_compose_is_pixel_exact() -> None:
    cells = [noise((64, 48), seed=n) for n in range(4)]
    grid = decode(media.compose_grid([encode(c, "PNG") for c in cells]))
    assert grid.size == (128, 96)
    # Top-left, top-right, bottom-left, bottom-right are images 1-4.
    assert grid.getpixel((0, 0)) == cells[0].getpixel((0, 0))
    assert grid.getpixel((64, 0)) == cells[1].getpixel((0, 0))
    assert grid.getpixel((0, 48)) == cells[2].getpixel((0, 0))
    assert grid.getpixel((127, 95)) == cells[3].getpixel((63, 47))

    parts = media.split_grid(encode(grid, "PNG"))
    assert len(parts) == 4
    for original, part in zip(cells, parts, strict=True):
        assert media.sniff_mime(part) == "image/png"
        assert decode(part).convert("RGB").tobytes() == original.tobytes()


def test_split_grid_of_an_odd_sized_grid_gives_equal_cells() -> None:
    grid = Image.new("RGB", (101, 61), (0, 0, 255))
    grid.paste((255, 0, 0), (51, 0, 101, 30))  # the top-right quarter
    parts = [decode(p) for p in media.split_grid(encode(grid, "JPEG", quality=95))]
    assert {p.size for p in parts} == {(50, 30)}
    r, _, b = parts[1].convert("RGB").getpixel((25, 15))
    assert r > 200 and b < 60
    r, _, b = parts[0].convert("RGB").getpixel((25, 15))
    assert b > 200 and r < 60


def test_compose_grid_layouts_gap_and_mixed_sizes() -> None:
    red = encode(Image.new("RGB", (100, 50), (255, 0, 0)), "PNG")
    small_green = encode(Image.new("RGB", (50, 25), (0, 255, 0)), "PNG")
    square_blue = encode(Image.new("RGB", (40, 40), (0, 0, 255)), "PNG")

    assert decode(media.compose_grid([red])).size == (100, 50)
    assert decode(media.compose_grid([red, red])).size == (200, 50)
    assert decode(media.compose_grid([red] * 3)).size == (200, 100)
    assert decode(media.compose_grid([red] * 8)).size == (400, 100)  # a Flux batch: 2 rows
    assert decode(media.compose_grid([red] * 6)).size == (300, 100)

    # Cells take the largest size of the first image's shape; smaller ones are scaled up,
    # other shapes fitted and centred (black around them).
    mixed = decode(media.compose_grid([small_green, red, square_blue], gap=4)).convert("RGB")
    assert mixed.size == (100 * 2 + 4, 50 * 2 + 4)
    assert mixed.getpixel((50, 25)) == (0, 255, 0)
    assert mixed.getpixel((102, 25)) == (0, 0, 0)  # the gap
    assert mixed.getpixel((50, 54 + 25))[2] > 200  # the square, centred in cell 3
    assert mixed.getpixel((2, 54 + 25)) == (0, 0, 0)  # beside it: background

    with pytest.raises(MediaError):
        media.compose_grid([])
    with pytest.raises(MediaError):
        media.compose_grid([red] * 9)
    with pytest.raises(MediaError, match="not an image"):
        media.compose_grid([red, b"<html></html>"])


# --------------------------------------------------------------------------- fit to limit


def test_fit_to_limit_keeps_what_already_fits() -> None:
    data = encode(noise((64, 64)), "PNG")
    result = media.fit_to_limit(data, len(data))
    assert result.data is data
    assert (result.mime, result.ext, result.width, result.height) == ("image/png", "png", 64, 64)
    assert result.note == ""


def test_fit_to_limit_tries_lossless_first() -> None:
    gradient = Image.linear_gradient("L").resize((512, 512)).convert("RGB")
    data = encode(gradient, "PNG", compress_level=0)  # stored, not compressed
    limit = int(len(data) * 0.8)
    result = media.fit_to_limit(data, limit)
    assert len(result.data) <= limit
    assert result.mime == "image/png"
    assert "losslessly" in result.note
    assert decode(result.data).convert("RGB").tobytes() == gradient.tobytes()


def test_fit_to_limit_then_high_quality_jpeg() -> None:
    smooth = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    grainy = Image.blend(smooth, noise((1024, 1024)), 0.15)
    data = encode(grainy, "PNG")
    limit = len(data) // 3  # out of reach of lossless
    result = media.fit_to_limit(data, limit)
    assert len(result.data) <= limit
    assert (result.mime, result.ext) == ("image/jpeg", "jpg")
    assert result.note in ("re-encoded as JPEG 92", "re-encoded as JPEG 85")
    assert (result.width, result.height) == (1024, 1024)


def test_fit_to_limit_downscales_noise_last() -> None:
    data = encode(noise((2048, 2048)), "PNG", compress_level=1)
    assert len(data) > 10 * 1024 * 1024
    result = media.fit_to_limit(data, 1024 * 1024)
    assert len(result.data) <= 1024 * 1024
    assert result.mime == "image/jpeg"
    assert result.width < 2048 and result.width == result.height
    assert result.note == f"re-encoded as JPEG 85, downscaled to {result.width}x{result.height}"
    assert decode(result.data).size == (result.width, result.height)


def test_fit_to_limit_keeps_transparency_as_webp() -> None:
    image = noise((512, 512), "RGBA")
    data = encode(image, "PNG")
    result = media.fit_to_limit(data, len(data) // 4)
    assert result.mime == "image/webp"
    assert decode(result.data).mode == "RGBA"


def test_fit_to_limit_gives_up_clearly() -> None:
    data = encode(noise((256, 256)), "PNG")
    with pytest.raises(MediaError, match="cannot be made to fit"):
        media.fit_to_limit(data, 300)
    with pytest.raises(MediaError, match="not an image"):
        media.fit_to_limit(os.urandom(100), 10)


# --------------------------------------------------------------------------- masks


def test_region_mask_pixels() -> None:
    data = media.region_mask((200, 100), [(0.5, 0.0, 1.0, 0.5), (0.0, 1.0, 0.25, 0.75)])
    assert media.sniff_mime(data) == "image/png"
    mask = decode(data)
    assert mask.size == (200, 100) and mask.mode == "RGB"
    assert mask.getpixel((150, 20)) == (255, 255, 255)  # first region
    assert mask.getpixel((99, 20)) == (0, 0, 0)
    assert mask.getpixel((100, 0)) == (255, 255, 255)  # its edges are inside
    assert mask.getpixel((150, 50)) == (0, 0, 0)
    assert mask.getpixel((20, 90)) == (255, 255, 255)  # corners in any order
    assert mask.getpixel((20, 70)) == (0, 0, 0)
    white = mask.convert("L").histogram()[255]
    assert white == 100 * 50 + 50 * 25


def test_region_mask_keeps_thin_regions_and_clamps() -> None:
    mask = decode(media.region_mask((100, 100), [(0.101, -1.0, 0.102, 2.0)]))
    column = [mask.getpixel((10, y)) for y in range(100)]
    assert column == [(255, 255, 255)] * 100
    with pytest.raises(MediaError, match="at least one"):
        media.region_mask((100, 100), [])
    with pytest.raises(MediaError, match="not a rectangle"):
        media.region_mask((100, 100), [(0.5, 0.5, 0.5, 0.9)])


# --------------------------------------------------------------------------- async


async def test_async_wrappers_run_off_the_loop() -> None:
    cells = [encode(Image.new("RGB", (32, 32), (n * 60, 0, 0)), "PNG") for n in range(4)]
    grid = await media.a_compose_grid(cells)
    assert (await media.a_inspect_image(grid)).width == 64
    parts = await media.a_split_grid(grid)
    assert decode(parts[3]).getpixel((0, 0)) == (180, 0, 0)
    fitted = await media.a_fit_to_limit(grid, 10_000_000)
    assert fitted.data == grid
    mask = await media.a_region_mask((10, 10), [(0, 0, 0.5, 0.5)])
    assert decode(mask).getpixel((0, 0)) == (255, 255, 255)
