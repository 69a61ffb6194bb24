"""Pixels: scenes rasterised, captions, soft masks and the image-to-image touches."""

from __future__ import annotations

import functools
from random import Random

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bot.providers.sandbox._palette import palette_of, rgb, tint
from bot.providers.sandbox._scene import Prim, Scene, primitives


def render_scene(scene: Scene, size: tuple[int, int]) -> Image.Image:
    width, height = size
    # Drawn at twice the size and reduced: ImageDraw does not anti-alias, and the box
    # reduction is far cheaper than the jaggies are ugly. Big images need it less.
    scale = 2 if width * height <= 1_200_000 else 1
    image = Image.new("RGB", (width * scale, height * scale))
    draw = ImageDraw.Draw(image, "RGBA")
    for prim in primitives(scene):
        if prim[0] == "bg":
            image.paste(_gradient(prim, size, scale))
        else:
            _draw_shape(draw, prim, image.size)
    if scale > 1:
        image = image.reduce(scale)
    if scene.caption:
        _draw_caption(image, scene.caption)
    return image


def _gradient(prim: Prim, size: tuple[int, int], scale: int) -> Image.Image:
    """The background: a 3x3 grid of colours, smoothed over the whole picture."""
    corners = Image.new("RGB", (3, 3))
    corners.putdata([rgb(c) for c in prim[2]])
    # Smooth at the final size, then doubled by pixel repetition: the reduction in
    # render_scene undoes that exactly, at a quarter of the cost of a bicubic resize.
    gradient = corners.resize(size, Image.Resampling.BICUBIC)
    if scale > 1:
        gradient = gradient.resize((size[0] * scale, size[1] * scale), Image.Resampling.NEAREST)
    return gradient


def _draw_shape(draw: ImageDraw.ImageDraw, prim: Prim, size: tuple[int, int]) -> None:
    kind, nums, colours, alpha = prim
    width, height = size
    short = min(width, height)
    fill = rgb(colours[0], alpha)
    if kind == "circle":
        x, y, r = nums[0] * width, nums[1] * height, nums[2] * short
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif kind == "ring":
        x, y, r = nums[0] * width, nums[1] * height, nums[2] * short
        draw.ellipse(
            (x - r, y - r, x + r, y + r), outline=fill, width=max(1, round(nums[3] * short))
        )
    elif kind == "rect":
        x0, x1 = sorted((nums[0] * width, nums[2] * width))
        y0, y1 = sorted((nums[1] * height, nums[3] * height))
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif kind == "poly":
        points = [(nums[i] * width, nums[i + 1] * height) for i in range(0, len(nums), 2)]
        draw.polygon(points, fill=fill)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # Pillow built without FreeType: the bitmap font
        return ImageFont.load_default()


def _draw_caption(image: Image.Image, caption: str) -> None:
    """The prompt's words, small, in the bottom-left corner."""
    width, height = image.size
    size = max(8, min(width, height) // 30)
    if size > height // 3:
        return
    font = _font(size)
    text = " ".join(caption.split())
    limit = width * 0.9 - size
    if font.getlength(text) > limit:
        while text and font.getlength(text + "…") > limit:
            text = text[:-1]
        text = text.rstrip() + "…" if text else ""
    if not text:
        return
    pad = max(2, size // 3)
    _, top, right, bottom = font.getbbox(text)
    x, y = pad * 2, height - (bottom - top) - pad * 3
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle((x - pad, y - pad + top, x + right + pad, y + bottom + pad), fill=(0, 0, 0, 120))
    draw.text((x, y), text, font=font, fill=(245, 245, 245, 235))


def feather_mask(size: tuple[int, int], feather: int) -> Image.Image:
    """White with soft edges: pasted images melt into what is around them."""
    width, height = size
    mask = Image.new("L", size, 0)
    feather = max(0, min(feather, width // 3, height // 3))
    ImageDraw.Draw(mask).rectangle(
        (feather, feather, width - 1 - feather, height - 1 - feather), fill=255
    )
    return mask.filter(ImageFilter.GaussianBlur(feather / 2)) if feather else mask


def add_detail(image: Image.Image, seed: int) -> Image.Image:
    """Upscale (Creative): crisper edges and a fine texture that was not there before."""
    image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=90, threshold=2))
    rng = Random(seed)
    width, height = image.size
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(min(6000, width * height // 900)):
        x, y = rng.randrange(width), rng.randrange(height)
        pixel = image.getpixel((x, y))
        r, g, b = pixel[:3] if isinstance(pixel, tuple) else (0, 0, 0)  # RGB: always a tuple
        lift = rng.choice((-40, 40))
        colour = (
            min(255, max(0, r + lift)),
            min(255, max(0, g + lift)),
            min(255, max(0, b + lift)),
            110,
        )
        radius = rng.uniform(0.6, 2.2) * max(1, width / 1024)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    return image


def vary_image(image: Image.Image, seed: int, strength: float) -> Image.Image:
    """A variation of any picture: re-framed a little, colours shifted, new shapes."""
    rng = Random(seed)
    width, height = image.size
    zoom = 1 + strength * rng.uniform(0.05, 0.25)
    crop_w, crop_h = width / zoom, height / zoom
    x0, y0 = rng.uniform(0, width - crop_w), rng.uniform(0, height - crop_h)
    out = image.resize(
        (width, height), Image.Resampling.BICUBIC, box=(x0, y0, x0 + crop_w, y0 + crop_h)
    )
    shift = round(rng.uniform(-1, 1) * strength * 40)
    if shift:
        hue, sat, val = out.convert("HSV").split()
        hue = hue.point(lambda v: (v + shift) % 256)
        out = Image.merge("HSV", (hue, sat, val)).convert("RGB")
    palette = palette_of(out)
    draw = ImageDraw.Draw(out, "RGBA")
    short = min(width, height)
    for _ in range(2 + int(strength * 8)):
        x, y, r = rng.random() * width, rng.random() * height, rng.uniform(0.03, 0.15) * short
        colour = rgb(tint(rng.choice(palette), 0, 0.1, 0.1), round(60 + 150 * strength))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return out
