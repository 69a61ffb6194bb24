"""Images: recognise, check, split and compose grids, and fit them under upload limits.

Everything here is CPU work on bytes. The plain functions are synchronous so that they
can be tested and reused directly; the `a_*` wrappers run them in a worker thread so
that the event loop (Discord heartbeats, the runner) never stalls on an image.

Nothing here trusts a server's Content-Type or file name: formats are read from the
bytes themselves, and Pillow is only ever asked to decode the four formats we accept.
No discord import.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

# 8192 x 8192: above Midjourney's largest upscale (4096 x 4096 from a 4x upscale) with
# room to spare, and well under Pillow's own bomb threshold (~89 Mpx), so that our clear
# message wins over Pillow's warning. A decoded RGBA image of this size is 256 MiB.
DEFAULT_MAX_PIXELS = 8192 * 8192

# Pillow's format name and our file extension for each accepted type.
_FORMATS: dict[str, tuple[str, str]] = {
    "image/png": ("PNG", "png"),
    "image/jpeg": ("JPEG", "jpg"),
    "image/gif": ("GIF", "gif"),
    "image/webp": ("WEBP", "webp"),
}
_KIND_NAME = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WebP"}

# PNG compression for images we produce. Level 6 (zlib's default) is within a few per
# cent of 9 on photos and several times faster; size limits are fit_to_limit's job.
_PNG_LEVEL = 6


class MediaError(ValueError):
    """An image problem, worded for the person who sent or asked for the image."""


@dataclass(frozen=True)
class ImageInfo:
    mime: str
    width: int
    height: int
    ext: str


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    mime: str
    ext: str
    width: int
    height: int
    note: str = ""  # what fit_to_limit did, e.g. "re-encoded as JPEG 85"; "" when untouched


# --------------------------------------------------------------------------- recognising


# Magic bytes at the start of a file: the four accepted image types, then what other
# files we can name in an error message.
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_OTHER_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BM", "a BMP image, which is not supported"),
    (b"II*\x00", "a TIFF image, which is not supported"),
    (b"MM\x00*", "a TIFF image, which is not supported"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")


def _by_magic(head: bytes, table: tuple[tuple[bytes, str], ...]) -> str | None:
    return next((name for magic, name in table if head.startswith(magic)), None)


def sniff_mime(data: bytes) -> str | None:
    """The image type from the file's magic bytes: PNG, JPEG, GIF or WebP, else None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return _by_magic(data, _IMAGE_MAGIC)


def _looks_like(data: bytes) -> str:
    """A few words on what a non-image file probably is, for the error message."""
    head = data[:1024]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    described = _looks_like_text(head.lstrip().lower()) or _by_magic(head, _OTHER_MAGIC)
    if described:
        return described
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIF_BRANDS:
            return "a HEIC/AVIF photo, which is not supported; export it as JPEG or PNG"
        return "a video"
    # Cut at 1 KiB, the head may end inside a multi-byte character: ignore that tail.
    decoded = head.decode("utf-8", "replace").rstrip("\ufffd")
    if "\ufffd" not in decoded and all(c.isprintable() or c.isspace() for c in decoded):
        return "plain text"
    return "binary data of an unknown kind"


def _looks_like_text(text: bytes) -> str | None:
    """What a text-based file is, from its lower-cased, stripped start; None if unknown."""
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text or b"<body" in text:
        return "an HTML page, perhaps an error page or an expired link"
    if text.startswith(b"%pdf"):
        return "a PDF document"
    if b"<svg" in text:
        return "an SVG drawing; vector images are not supported"
    if text.startswith(b"<?xml"):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "JSON data, perhaps an error message from a server"
    return None


def _open(data: bytes, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """Check the bytes and decode them (the first frame for animations).

    Dimensions are checked from the header before any pixel is decoded, so a small
    file that claims a huge canvas (a decompression bomb) costs nothing.
    """
    if not data:
        raise MediaError("That file is empty (0 bytes); it is not an image.")
    mime = sniff_mime(data)
    if mime is None:
        raise MediaError(
            f"That file is not an image (it looks like {_looks_like(data)}). "
            "Atelier accepts PNG, JPEG, WebP and GIF."
        )
    pil_format, ext = _FORMATS[mime]
    kind = _KIND_NAME[mime]
    try:
        image = Image.open(io.BytesIO(data), formats=[pil_format])
    except Image.DecompressionBombError:
        raise MediaError(
            f"That {kind} image claims an enormous size, larger than Atelier will decode "
            "(it may be a decompression bomb)."
        ) from None
    except Exception:
        # Pillow reports broken headers with many exception types (SyntaxError, OSError,
        # struct.error, ...); to the user they all mean the same thing.
        raise MediaError(f"That {kind} file is damaged and cannot be read.") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError(f"That {kind} file has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise MediaError(
            f"That image is too large: {width}x{height} pixels; Atelier accepts at most "
            f"{max_pixels / 1_000_000:.0f} megapixels (it may be a decompression bomb)."
        )
    try:
        image.load()
    except Exception:
        # Truncated downloads surface only here ("image file is truncated"), and only a
        # full decode finds them: verify() is a no-op for JPEG.
        raise MediaError(
            f"That {kind} file is incomplete or damaged (the download may have been cut "
            "short); try again."
        ) from None
    return image, ImageInfo(mime=mime, width=width, height=height, ext=ext)


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Type and size of an image, after checking that it decodes. Raises MediaError."""
    image, info = _open(data, max_pixels)
    image.close()
    return info


# --------------------------------------------------------------------------- grids


def _has_alpha(image: Image.Image) -> bool:
    """True when the image has transparency that is actually used."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        lowest = image.convert("RGBA").getchannel("A").getextrema()[0]
        # One channel gives (min, max) numbers; the tuple form is for multi-band images.
        return not isinstance(lowest, tuple) and lowest < 255
    return False


def _normalise(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when transparency matters, with the EXIF rotation applied."""
    image = ImageOps.exif_transpose(image)
    wanted = "RGBA" if _has_alpha(image) else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def _png(image: Image.Image, *, optimize: bool = False) -> bytes:
    out = io.BytesIO()
    if optimize:
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "PNG", compress_level=_PNG_LEVEL)
    return out.getvalue()


def split_grid(data: bytes) -> list[bytes]:
    """A 2x2 grid as four PNGs: top-left, top-right, bottom-left, bottom-right (1-4).

    With an odd width or height the middle row/column of pixels is dropped so that all
    four images have the same size.
    """
    image, info = _open(data, DEFAULT_MAX_PIXELS)
    if info.width < 2 or info.height < 2:
        raise MediaError(f"That image ({info.width}x{info.height}) is too small to be a grid.")
    image = _normalise(image)
    width, height = image.size
    cell_w, cell_h = width // 2, height // 2
    boxes = [
        (0, 0, cell_w, cell_h),
        (width - cell_w, 0, width, cell_h),
        (0, height - cell_h, cell_w, height),
        (width - cell_w, height - cell_h, width, height),
    ]
    return [_png(image.crop(box)) for box in boxes]


def grid_layout(count: int) -> tuple[int, int]:
    """(columns, rows) for `count` images: 1x1, 2x1, 2x2 for up to 4, else two rows."""
    if not 1 <= count <= 8:
        raise MediaError(f"A grid holds 1 to 8 images, not {count}.")
    if count <= 2:
        return count, 1
    if count <= 4:
        return 2, 2
    return math.ceil(count / 2), 2


def compose_grid(images: Sequence[bytes], gap: int = 0) -> bytes:
    """Up to 8 images as one PNG grid (see grid_layout), `gap` pixels between cells.

    All cells share the first image's aspect ratio; the cell is the largest such box
    that fits inside one of the images, so nothing is upscaled beyond its best source.
    Images of another shape are fitted inside their cell and centred.
    """
    columns, rows = grid_layout(len(images))
    if gap < 0:
        raise MediaError("The gap between grid cells cannot be negative.")
    opened = [_normalise(_open(data, DEFAULT_MAX_PIXELS)[0]) for data in images]
    first_w, first_h = opened[0].size
    aspect = first_w / first_h
    cell_w = max(min(img.width, round(img.height * aspect)) for img in opened)
    cell_h = max(1, round(cell_w / aspect))
    mode = "RGBA" if any(img.mode == "RGBA" for img in opened) else "RGB"
    background = (0, 0, 0, 0) if mode == "RGBA" else (0, 0, 0)
    canvas = Image.new(
        mode,
        (columns * cell_w + (columns - 1) * gap, rows * cell_h + (rows - 1) * gap),
        background,
    )
    for n, img in enumerate(opened):
        if img.size != (cell_w, cell_h):
            img = ImageOps.contain(img, (cell_w, cell_h), Image.Resampling.LANCZOS)
        if img.mode != mode:
            img = img.convert(mode)
        column, row = n % columns, n // columns
        x = column * (cell_w + gap) + (cell_w - img.width) // 2
        y = row * (cell_h + gap) + (cell_h - img.height) // 2
        canvas.paste(img, (x, y))
    return _png(canvas)


# --------------------------------------------------------------------------- fit to limit

_LOSSY_QUALITIES = (92, 85)
_MIN_SIDE = 64  # below this a picture is no longer worth sending


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        # 4:4:4 chroma at high quality keeps thin coloured lines (the prompt text drawn
        # on sandbox images, line art) sharp; 4:2:0 below that for size.
        subsampling = 0 if quality >= 90 else 2
        try:
            image.save(out, "JPEG", quality=quality, optimize=True, subsampling=subsampling)
        except OSError:
            # Pillow sizes the buffer for optimised Huffman tables at one byte per pixel,
            # which very noisy images exceed at high quality: encode without them.
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality, subsampling=subsampling)
    else:
        image.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()


def fit_to_limit(data: bytes, max_bytes: int) -> EncodedImage:
    """The image in at most `max_bytes`, changed as little as possible.

    Stages, stopping at the first that fits: unchanged; lossless (optimised PNG, for
    PNG/GIF sources only slightly over the limit); high-quality lossy (JPEG, or WebP
    when the image has transparency) at quality 92 then 85; finally downscaling in steps
    of about 0.8. Raises MediaError when even a small picture would not fit.
    """
    if max_bytes <= 0:
        raise MediaError("The upload limit must be positive.")
    image, info = _open(data, DEFAULT_MAX_PIXELS)
    if len(data) <= max_bytes:
        image.close()
        return EncodedImage(data, info.mime, info.ext, info.width, info.height, "")
    frames = getattr(image, "n_frames", 1)
    suffix = ", first frame only" if frames > 1 else ""
    image = _normalise(image)

    # Lossless first, but only when it can plausibly win: re-compressing a PNG saves
    # tens of per cent at best, and a JPEG source would only grow as PNG.
    if info.mime in ("image/png", "image/gif") and len(data) <= max_bytes * 1.5:
        packed = _png(image, optimize=True)
        if len(packed) <= max_bytes:
            width, height = image.size
            note = f"re-compressed losslessly as PNG{suffix}"
            return EncodedImage(packed, "image/png", "png", width, height, note)
    lossy = _WEBP if image.mode == "RGBA" else _JPEG
    encoded = b""
    for quality in _LOSSY_QUALITIES:
        encoded = _encode(image, lossy.pil_format, quality)
        if len(encoded) <= max_bytes:
            return lossy.result(encoded, image.size, f"{quality}{suffix}")
    return _downscaled(image, lossy, max_bytes, len(encoded), suffix)


@dataclass(frozen=True)
class _Lossy:
    """A lossy format fit_to_limit falls back to."""

    pil_format: str
    mime: str
    ext: str
    name: str  # as the note says it

    def result(self, data: bytes, size: tuple[int, int], how: str) -> EncodedImage:
        note = f"re-encoded as {self.name} {how}"
        return EncodedImage(data, self.mime, self.ext, size[0], size[1], note)


_JPEG = _Lossy("JPEG", "image/jpeg", "jpg", "JPEG")
_WEBP = _Lossy("WEBP", "image/webp", "webp", "WebP")  # keeps transparency


def _downscaled(
    image: Image.Image, lossy: _Lossy, max_bytes: int, full_size: int, suffix: str
) -> EncodedImage:
    """The last stage of fit_to_limit: smaller until it fits (`full_size`: the bytes of
    the full-size image at the lowest quality)."""
    width, height = image.size
    quality = _LOSSY_QUALITIES[-1]
    # Size falls roughly with the pixel count, so the first step jumps near the target
    # (with a margin); later steps shrink by 0.8 until it fits.
    scale = min(0.8, 0.95 * math.sqrt(max_bytes / full_size))
    while True:
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        if min(new_w, new_h) < min(_MIN_SIDE, width, height):
            raise MediaError(
                f"That image cannot be made to fit in {_human(max_bytes)}, even downscaled."
            )
        smaller = image.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        encoded = _encode(smaller, lossy.pil_format, quality)
        if len(encoded) <= max_bytes:
            how = f"{quality}, downscaled to {new_w}x{new_h}{suffix}"
            return lossy.result(encoded, (new_w, new_h), how)
        scale *= 0.8


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size} bytes"


# --------------------------------------------------------------------------- masks


def region_mask(
    size: tuple[int, int], regions: Sequence[tuple[float, float, float, float]]
) -> bytes:
    """A PNG mask for Vary (Region): black, with white where the image is to be redrawn.

    `regions` are rectangles as fractions of the image (x0, y0, x1, y1), in any corner
    order; they are clamped to the image and rounded outwards so that no region, however
    thin, vanishes. This is the `maskBase64` format midjourney-proxy expects.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError(f"A mask needs a positive size, not {width}x{height}.")
    if not regions:
        raise MediaError("Select at least one area to redraw.")
    mask = Image.new("L", (width, height), 0)
    for region in regions:
        box = pixel_box(region, (width, height))
        if box is None:
            raise MediaError(f"The area {tuple(region)} is not a rectangle inside the image.")
        mask.paste(255, box)
    # RGB rather than greyscale: some proxies pass the mask on assuming three channels.
    return _png(mask.convert("RGB"))


def pixel_box(region: Sequence[float], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A fractional (x0, y0, x1, y1) rectangle as a pixel box, or None when it is empty."""
    if len(region) != 4 or not all(math.isfinite(v) for v in region):
        return None
    width, height = size
    x0, x1 = sorted(min(1.0, max(0.0, float(v))) for v in (region[0], region[2]))
    y0, y1 = sorted(min(1.0, max(0.0, float(v))) for v in (region[1], region[3]))
    if x1 <= x0 or y1 <= y0:
        return None
    left, top = math.floor(x0 * width), math.floor(y0 * height)
    right, bottom = math.ceil(x1 * width), math.ceil(y1 * height)
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    return left, top, min(right, width), min(bottom, height)


# --------------------------------------------------------------------------- async


async def a_inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    return await asyncio.to_thread(inspect_image, data, max_pixels)


async def a_split_grid(data: bytes) -> list[bytes]:
    return await asyncio.to_thread(split_grid, data)


async def a_compose_grid(images: Sequence[bytes], gap: int = 0) -> bytes:
    return await asyncio.to_thread(compose_grid, list(images), gap)


async def a_fit_to_limit(data: bytes, max_bytes: int) -> EncodedImage:
    return await asyncio.to_thread(fit_to_limit, data, max_bytes)


async def a_region_mask(
    size: tuple[int, int], regions: Sequence[tuple[float, float, float, float]]
) -> bytes:
    return await asyncio.to_thread(region_mask, size, list(regions))
