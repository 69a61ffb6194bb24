"""Images: recognise, check, split and compose grids, and fit them under upload limits.

Everything here is CPU work on bytes. The plain functions are synchronous so that they
can be tested and reused directly; the `a_*` wrappers run them on a small, bounded
pool of worker threads (bot.media_pool) so that the event loop (Discord
heartbeats, the runner) never stalls on an image, and a burst of huge uploads holds at
most a few decoded images in memory at once.

Nothing here trusts a server's Content-Type or file name: formats are read from the
bytes themselves, and Pillow is only ever asked to decode the four formats we accept.
No discord import.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps

from bot.mask_geometry import drawn_polygon, pixel_box, pixel_polygon, signed_area
from bot.media_pool import Lane, run_image_work

# Re-exported: callers pick a lane here, and providers convert Vary (Region) areas with
# the same arithmetic as the masks drawn here.
__all__ = ["Lane", "pixel_box", "pixel_polygon", "run_image_work", "signed_area"]

# 8192 x 8192: above Midjourney's largest upscale (4096 x 4096 from a 4x upscale) with
# room to spare, and well under Pillow's own bomb threshold (~89 Mpx), so that our clear
# message wins over Pillow's warning. A decoded RGBA image of this size is 256 MiB.
DEFAULT_MAX_PIXELS = 8192 * 8192
# The largest canvas Atelier composes (grids) or draws (masks): as large as the largest
# image it accepts. compose_grid shrinks its cells to fit; other canvases refuse.
MAX_CANVAS_PIXELS = 8192 * 8192

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


def _header(data: bytes, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """Check the bytes and read the image's header only: no pixel is decoded yet.

    Dimensions are checked from the header, so a small file that claims a huge canvas
    (a decompression bomb) is refused before it costs any memory.
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
            f"(at most {_megapixels(max_pixels)}; it may be a decompression bomb)."
        ) from None
    except Exception:
        # Pillow reports broken headers with many exception types (SyntaxError, OSError,
        # struct.error, ...); to the user they all mean the same thing.
        raise MediaError(f"That {kind} file is damaged and cannot be read.") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise MediaError(f"That {kind} file has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        image.close()
        raise MediaError(
            f"That image is too large: {width}x{height} pixels; Atelier accepts at most "
            f"{_megapixels(max_pixels)} (it may be a decompression bomb)."
        )
    return image, ImageInfo(mime=mime, width=width, height=height, ext=ext)


def _megapixels(pixels: int) -> str:
    side = math.isqrt(pixels)
    square = f", {side}x{side}" if side * side == pixels else ""
    return f"{pixels / 1_000_000:.0f} megapixels{square}"


def _open(data: bytes, max_pixels: int) -> tuple[Image.Image, ImageInfo]:
    """Check the bytes (header first, see _header), then decode them (the first frame
    for animations)."""
    image, info = _header(data, max_pixels)
    try:
        image.load()
    except Exception:
        # Truncated downloads surface only here ("image file is truncated"), and only a
        # full decode finds them: verify() is a no-op for JPEG.
        raise MediaError(
            f"That {_KIND_NAME[info.mime]} file is incomplete or damaged (the download may "
            "have been cut short); try again."
        ) from None
    return image, info


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


def compose_grid(
    images: Sequence[bytes], gap: int = 0, max_pixels: int = MAX_CANVAS_PIXELS
) -> bytes:
    """Up to 8 images as one PNG grid (see grid_layout), `gap` pixels between cells.

    All cells share the first image's aspect ratio; the cell is the largest such box
    that fits inside one of the images, so nothing is upscaled beyond its best source.
    Images of another shape are fitted inside their cell and centred. A grid that would
    exceed `max_pixels` gets smaller cells (the grid is an overview; the images
    themselves are kept at full size). Sizes come from the headers, and each image is
    shrunk to its cell as soon as it is decoded, so at most one full-size image is held.
    """
    columns, rows = grid_layout(len(images))
    if gap < 0:
        raise MediaError("The gap between grid cells cannot be negative.")
    sizes = [_oriented_size(_header(data, DEFAULT_MAX_PIXELS)[0]) for data in images]
    cell_w, cell_h = _grid_cell(sizes, columns, rows, gap, max_pixels)
    cells: list[Image.Image] = []
    for data in images:
        img = _normalise(_open(data, DEFAULT_MAX_PIXELS)[0])
        if img.size != (cell_w, cell_h):
            img = ImageOps.contain(img, (cell_w, cell_h), Image.Resampling.LANCZOS)
        cells.append(img)
    mode = "RGBA" if any(img.mode == "RGBA" for img in cells) else "RGB"
    background = (0, 0, 0, 0) if mode == "RGBA" else (0, 0, 0)
    size = (columns * cell_w + (columns - 1) * gap, rows * cell_h + (rows - 1) * gap)
    canvas = new_canvas(mode, size, background, max_pixels)
    for n, img in enumerate(cells):
        if img.mode != mode:
            img = img.convert(mode)
        column, row = n % columns, n // columns
        x = column * (cell_w + gap) + (cell_w - img.width) // 2
        y = row * (cell_h + gap) + (cell_h - img.height) // 2
        canvas.paste(img, (x, y))
    return _png(canvas)


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """The size an image will have once its EXIF rotation is applied (from the header)."""
    width, height = image.size
    rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # a quarter turn
    image.close()
    return (height, width) if rotated else (width, height)


def _grid_cell(
    sizes: Sequence[tuple[int, int]], columns: int, rows: int, gap: int, max_pixels: int
) -> tuple[int, int]:
    """compose_grid's cell: the first image's shape, shrunk so the grid fits the cap."""
    first_w, first_h = sizes[0]
    aspect = first_w / first_h
    cell_w = max(min(w, round(h * aspect)) for w, h in sizes)
    cell_h = max(1, round(cell_w / aspect))

    def area(cell_w: int, cell_h: int) -> int:
        return (columns * cell_w + (columns - 1) * gap) * (rows * cell_h + (rows - 1) * gap)

    while area(cell_w, cell_h) > max_pixels and cell_w > 1:
        shrink = min(0.99, math.sqrt(max_pixels / area(cell_w, cell_h)))
        cell_w = max(1, math.floor(cell_w * shrink))
        cell_h = max(1, round(cell_w / aspect))
    return cell_w, cell_h


def new_canvas(
    mode: str,
    size: tuple[int, int],
    color: float | tuple[int, ...] = 0,
    max_pixels: int = MAX_CANVAS_PIXELS,
) -> Image.Image:
    """A blank image, refused with a clear MediaError when it is over `max_pixels`
    (rather than a MemoryError deep inside Pillow)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError(f"An image needs a positive size, not {width}x{height}.")
    if width * height > max_pixels:
        raise MediaError(
            f"An image of {width}x{height} pixels is larger than Atelier makes (at most "
            f"{_megapixels(max_pixels)})."
        )
    return Image.new(mode, size, color)


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
    size: tuple[int, int],
    regions: Sequence[tuple[float, float, float, float]],
    polygons: Sequence[Sequence[Sequence[float]]] = (),
) -> bytes:
    """A PNG mask for Vary (Region): black, with white where the image is to be redrawn.
    This is the `maskBase64` format midjourney-proxy expects; see `draw_mask`."""
    if not regions and not polygons:
        raise MediaError("Select at least one area to redraw.")
    # RGB rather than greyscale: some proxies pass the mask on assuming three channels.
    return _png(draw_mask(size, regions, polygons).convert("RGB"))


def draw_mask(
    size: tuple[int, int],
    regions: Sequence[tuple[float, float, float, float]],
    polygons: Sequence[Sequence[Sequence[float]]] = (),
) -> Image.Image:
    """The mask as a greyscale image: 0, and 255 inside the areas.

    `regions` are rectangles as fractions of the image (x0, y0, x1, y1), in any corner
    order; `polygons` are lassos, their (x, y) fractions in drawing order. Both are
    clamped to the image and rounded outwards so that no area, however thin, vanishes
    (a lasso's outline is drawn as well as its inside)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError(f"A mask needs a positive size, not {width}x{height}.")
    mask = new_canvas("L", (width, height), 0)
    for region in regions:
        box = pixel_box(region, (width, height))
        if box is None:
            raise MediaError(f"The area {tuple(region)} is not a rectangle inside the image.")
        mask.paste(255, box)
    pen = ImageDraw.Draw(mask)
    for polygon in polygons:
        points = drawn_polygon(polygon, (width, height))
        if not points:
            raise MediaError("A drawn area has no point inside the image.")
        pen.polygon(points, fill=255, outline=255)
    return mask


# --------------------------------------------------------------------------- metadata

# What Pillow reads from a file that says nothing about the person who made it: colour,
# transparency, animation timing, encoder details. Anything else (EXIF with GPS, XMP,
# IPTC, PNG text chunks such as a generator's prompt, comments, unknown keys) counts
# as metadata and is dropped by re-encoding.
_HARMLESS_INFO = frozenset(
    {
        "icc_profile", "transparency", "duration", "loop", "background", "gamma", "dpi",
        "aspect", "jfif", "jfif_version", "jfif_unit", "jfif_density", "adobe",
        "adobe_transform", "progressive", "progression", "interlace", "srgb",
        "chromaticity", "version", "extension", "disposal", "blend", "default_image",
        "compression", "bbox", "timestamp",
    }
)  # fmt: skip
# JPEG segments that carry no metadata: JFIF (APP0), ICC colour (APP2), Adobe (APP14).
_HARMLESS_APP = (("APP0", b"JFIF"), ("APP2", b"ICC_PROFILE"), ("APP14", b"Adobe"))


def _has_metadata(image: Image.Image) -> bool:
    if len(image.getexif()) or any(key not in _HARMLESS_INFO for key in image.info):
        return True
    applist: list[tuple[str, bytes]] = getattr(image, "applist", [])
    return not all(
        any(marker == name and body.startswith(head) for name, head in _HARMLESS_APP)
        for marker, body in applist
    )


def strip_metadata(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> EncodedImage:
    """An attachment checked (pixels capped before decoding, see _header) and without
    metadata (EXIF, GPS, XMP, text chunks): re-encoded in its own format with the EXIF
    rotation applied, so it looks the same. One without metadata is returned as is."""
    image, info = _open(data, max_pixels)
    if not _has_metadata(image):
        image.close()
        return EncodedImage(data, info.mime, info.ext, info.width, info.height, "")
    frames = getattr(image, "n_frames", 1)
    # An animation keeps its frames (and has no EXIF rotation to apply).
    if frames == 1:
        ImageOps.exif_transpose(image, in_place=True)  # no second copy of the pixels
    clean = image
    kept: dict[str, object] = {
        key: clean.info[key] for key in ("icc_profile", "transparency") if key in clean.info
    }
    clean.info = {key: value for key, value in clean.info.items() if key in _HARMLESS_INFO}
    out = io.BytesIO()
    pil_format = _FORMATS[info.mime][0]
    options: dict[str, object] = {**kept, "save_all": frames > 1}
    if pil_format == "JPEG":
        options.update(quality=95, subsampling=0)
    elif pil_format == "WEBP":
        options.update(quality=95, lossless=b"VP8L" in data[:64])
    elif pil_format == "PNG":
        options.update(compress_level=_PNG_LEVEL)
    clean.save(out, pil_format, **options)
    image.close()
    return EncodedImage(out.getvalue(), info.mime, info.ext, clean.width, clean.height, "")


# --------------------------------------------------------------------------- async


async def a_inspect_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, lane: Lane = Lane.SHARED
) -> ImageInfo:
    return await run_image_work(lane, inspect_image, data, max_pixels)


async def a_strip_metadata(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> EncodedImage:
    return await run_image_work(Lane.SHARED, strip_metadata, data, max_pixels)


async def a_split_grid(data: bytes, *, lane: Lane = Lane.SHARED) -> list[bytes]:
    return await run_image_work(lane, split_grid, data)


async def a_compose_grid(
    images: Sequence[bytes], gap: int = 0, *, lane: Lane = Lane.SHARED
) -> bytes:
    return await run_image_work(lane, compose_grid, list(images), gap)


async def a_fit_to_limit(data: bytes, max_bytes: int, *, lane: Lane = Lane.SHARED) -> EncodedImage:
    return await run_image_work(lane, fit_to_limit, data, max_bytes)


async def a_region_mask(
    size: tuple[int, int],
    regions: Sequence[tuple[float, float, float, float]],
    polygons: Sequence[Sequence[Sequence[float]]] = (),
) -> bytes:
    return await run_image_work(Lane.SHARED, region_mask, size, list(regions), list(polygons))
