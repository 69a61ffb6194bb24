"""Drawing a task's images: every picture is a function of (task, image number, size).

Nothing but specs is stored. An image is rendered on demand, off the event loop, when
its URL is downloaded: an imagine draws its scenes, an upscale re-renders its grid cell
at full size, a variation jitters the cell's scene (or, for a picture that is not a
scene, the picture itself), a zoom draws its parent smaller inside a new border, and
so on up a chain of follow-ups. Recent images are cached, so a chain is not redrawn
from its start each time.
"""

from __future__ import annotations

import functools
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from random import Random
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from bot import media
from bot.providers.base import BadResponse, TaskNotFound
from bot.providers.sandbox._hashing import mix
from bot.providers.sandbox._paint import add_detail, feather_mask, render_scene, vary_image
from bot.providers.sandbox._palette import as_hsv, palette_from_text, palette_of, rgb, tint
from bot.providers.sandbox._scene import LAYOUTS, Scene
from bot.providers.sandbox._spec import Spec, SpecStore, content_key, dims
from bot.vocab import Action, Param

PREVIEW_SIDE = 512  # long side of running previews, like Midjourney's small previews
# How far each kind of variation moves from the picture it varies.
VARY_STRENGTH: dict[str, float] = {
    Action.VARIATION: 0.35,
    Action.VARY_SUBTLE: 0.12,
    Action.VARY_STRONG: 0.5,
}
_UPSCALES: frozenset[str] = frozenset(
    {Action.UPSCALE, Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE}
)
Size = tuple[int, int]

# Drawn as a pan to the left; the other directions turn the picture first and back
# afterwards (up: a quarter turn brings the top edge to the left).
_PAN_TURNS: dict[str, tuple[tuple[Image.Transpose, ...], tuple[Image.Transpose, ...]]] = {
    "left": ((), ()),
    "right": ((Image.Transpose.FLIP_LEFT_RIGHT,), (Image.Transpose.FLIP_LEFT_RIGHT,)),
    "up": ((Image.Transpose.ROTATE_90,), (Image.Transpose.ROTATE_270,)),
    "down": (
        (Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_90),
        (Image.Transpose.ROTATE_270, Image.Transpose.FLIP_TOP_BOTTOM),
    ),
}


class Renderer:
    """Draws a task's images on demand. Thread-safe: it runs in worker threads."""

    def __init__(self, store: SpecStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        # Recently drawn images, keyed (task, image, size): a grid's cells, the parent of
        # a chain of follow-ups, the input images of a blend. Treat as read-only.
        self._images: OrderedDict[tuple[Any, ...], Image.Image] = OrderedDict()
        # ~12 MB of RGB: the cells of the last few grids at the default size (a 1024 px
        # grid is ~0.7 M pixels), enough for a chain of follow-ups. It was 24 M (72 MB),
        # which many jobs finishing together filled with cells nobody asked for again:
        # the largest share of the process's memory with 1,000 jobs (bench/engine_load).
        self._max_pixels = 4_000_000
        # What each kind of task that is not a scene draws.
        self._edits: dict[str, Callable[[Spec, int, Size], Image.Image]] = {
            Action.ZOOM: self._zoom,
            Action.PAN: self._pan,
            Action.INPAINT: self._inpaint,
            Action.BLEND: self._blend,
            Action.SWAP_FACE: self._swap_face,
        }

    # -- cache

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Image.Image]) -> Image.Image:
        with self._lock:
            found = self._images.get(key)
            if found is not None:
                self._images.move_to_end(key)
                return found
        image = make()
        with self._lock:
            self._images[key] = image
            total = sum(i.width * i.height for i in self._images.values())
            while total > self._max_pixels and len(self._images) > 1:
                _, dropped = self._images.popitem(last=False)
                total -= dropped.width * dropped.height
        return image

    # -- entry points

    def picture(self, spec: Spec, long: int) -> Image.Image:
        """The task's result: the whole grid, or the single image, at this long side."""
        if not spec.grid:
            return self.image(spec, 1, long)
        cells = [self.image(spec, n, long // 2) for n in range(1, 5)]
        cell_w, cell_h = cells[0].size
        grid = Image.new("RGB", (cell_w * 2, cell_h * 2))
        for n, cell in enumerate(cells):
            grid.paste(cell, ((n % 2) * cell_w, (n // 2) * cell_h))
        return grid

    def png(self, spec: Spec, preview: int | None) -> bytes:
        """The result as PNG, or, with `preview` (0-100 %), a blurred small preview."""
        if preview is None:
            picture = self.picture(spec, spec.long)
        else:
            picture = self.picture(spec, min(spec.long, PREVIEW_SIDE))
            radius = (100 - preview) / 100 * picture.width / 28 + 0.8
            picture = picture.filter(ImageFilter.GaussianBlur(radius))
        out = io.BytesIO()
        # Fast compression: these pictures are mostly flat colour and compress well at
        # level 1; a grid encodes in tens of milliseconds instead of hundreds.
        picture.save(out, "PNG", compress_level=1)
        return out.getvalue()

    def image(self, spec: Spec, cell: int, long: int) -> Image.Image:
        """Image `cell` (1-4; 1 for single-image tasks) at this long side."""
        cell = cell if spec.grid else 1
        key = (*content_key(spec), cell, long)
        return self._cached(key, lambda: self._draw(spec, cell, long))

    def scene(self, spec: Spec, cell: int) -> Scene | None:
        """The procedural scene behind an image, when it is one (imagine and what is
        derived from it without image operations); else None."""
        if spec.draw == Action.IMAGINE:
            return _imagine_scene(spec, cell)
        if spec.draw in _UPSCALES or spec.draw in VARY_STRENGTH:
            parent = self._parent(spec)
            base = self.scene(parent, (spec.index or 1) if parent.grid else 1)
            if base is None or spec.draw not in VARY_STRENGTH:
                return base
            return base.jittered(mix("vary", spec.seed, cell), VARY_STRENGTH[spec.draw])
        return None

    # -- drawing

    def _parent(self, spec: Spec) -> Spec:
        parent = self._store.load(spec.parent or "")
        if parent is None:
            raise TaskNotFound(
                f"The sandbox no longer has job {spec.parent}, which this one builds on."
            )
        return parent

    def _parent_image(self, spec: Spec, long: int) -> Image.Image:
        return self.image(self._parent(spec), spec.index or 1, long)

    def _draw(self, spec: Spec, cell: int, long: int) -> Image.Image:
        size = dims(spec.ratio, long)
        scene = self.scene(spec, cell)
        edit = self._edits.get(spec.draw)
        if scene is not None:
            image = render_scene(scene, size)
        elif spec.draw in VARY_STRENGTH:
            base = self._parent_image(spec, long)
            seed = mix("vary", spec.seed, cell)
            image = vary_image(base.resize(size), seed, VARY_STRENGTH[spec.draw])
        elif spec.draw in _UPSCALES:
            image = self._parent_image(spec, long).resize(size)
        elif edit is not None:
            image = edit(spec, cell, size)
        else:
            raise BadResponse(f"A sandbox {spec.draw} job has no images.")
        if spec.draw == Action.UPSCALE_CREATIVE:
            image = add_detail(image, mix("detail", spec.seed))
        return image

    def _border(self, spec: Spec, cell: int, around: Image.Image, size: Size) -> Image.Image:
        """New surroundings in the colours of `around` (zoom, pan)."""
        seed = mix("border", spec.seed, cell)
        layout = LAYOUTS[seed % len(LAYOUTS)]
        return render_scene(Scene(seed, tuple(palette_of(around)), layout), size)

    def _zoom(self, spec: Spec, cell: int, size: Size) -> Image.Image:
        width, height = size
        parent = self._parent(spec)
        # The parent, fitted inside the new frame, then made smaller by the zoom factor.
        fit_w, fit_h = dims(parent.ratio, 1_000_000)
        fit = min(width / fit_w, height / fit_h)
        inner_w = max(1, round(fit_w * fit / spec.zoom))
        inner_h = max(1, round(fit_h * fit / spec.zoom))
        inner = self._parent_image(spec, max(inner_w, inner_h))
        if inner.size != (inner_w, inner_h):
            inner = inner.resize((inner_w, inner_h), Image.Resampling.BICUBIC)
        canvas = self._border(spec, cell, inner, size)
        feather = max(1, min(inner_w, inner_h) // 20)
        canvas.paste(
            inner,
            ((width - inner_w) // 2, (height - inner_h) // 2),
            feather_mask(inner.size, feather),
        )
        return canvas

    def _pan(self, spec: Spec, cell: int, size: Size) -> Image.Image:
        before, after = _PAN_TURNS[spec.variant]
        width, height = size
        horizontal = spec.variant in ("left", "right")
        old_w = round(width / 1.5) if horizontal else width
        old_h = height if horizontal else round(height / 1.5)
        old = self._parent_image(spec, max(old_w, old_h))
        if old.size != (old_w, old_h):
            old = old.resize((old_w, old_h), Image.Resampling.BICUBIC)
        for turn in before:
            old = old.transpose(turn)
        canvas_w, canvas_h = (width, height) if horizontal else (height, width)
        new_w = canvas_w - old.width
        canvas = self._border(spec, cell, old, (canvas_w, canvas_h))
        # The new strip continues the old picture (a blurred mirror of its edge),
        # blended with new shapes so that it is not a plain reflection.
        mirror = ImageOps.mirror(old).crop((old.width - new_w, 0, old.width, old.height))
        mirror = mirror.filter(ImageFilter.GaussianBlur(max(1, canvas_h / 150)))
        canvas.paste(Image.blend(mirror, canvas.crop((0, 0, new_w, canvas_h)), 0.55), (0, 0))
        mask = Image.new("L", old.size, 255)
        seam = max(1, old.width // 12)
        gradient = Image.linear_gradient("L").rotate(90).resize((seam, old.height))
        mask.paste(gradient, (0, 0))  # 0 at the seam, rising to 255 inside the old picture
        canvas.paste(old, (new_w, 0), mask)
        for turn in after:
            canvas = canvas.transpose(turn)
        return canvas

    def _inpaint(self, spec: Spec, cell: int, size: Size) -> Image.Image:
        canvas = self._parent_image(spec, max(size)).copy()
        if canvas.size != size:
            canvas = canvas.resize(size, Image.Resampling.BICUBIC)
        palette = (
            palette_from_text(spec.text, spec.seed) if spec.text.strip() else palette_of(canvas)
        )
        for n, region in enumerate(spec.regions):
            # The same pixels as the mask other providers are sent (media.region_mask).
            box = media.pixel_box(region, size)
            if box is None:
                continue
            box_w, box_h = box[2] - box[0], box[3] - box[1]
            seed = mix("region", spec.seed, cell, n)
            scene = Scene(seed, tuple(palette), LAYOUTS[seed % len(LAYOUTS)])
            patch = render_scene(scene, (box_w, box_h))
            canvas.paste(patch, box[:2], feather_mask(patch.size, min(box_w, box_h) // 10))
        for n, polygon in enumerate(spec.polygons, start=len(spec.regions)):
            seed = mix("region", spec.seed, cell, n)
            scene = Scene(seed, tuple(palette), LAYOUTS[seed % len(LAYOUTS)])
            _redraw_lasso(canvas, polygon, scene)
        return canvas

    def _inputs(self, spec: Spec) -> list[Image.Image]:
        owner = spec.inputs_of or spec.id

        def load(n: int) -> Image.Image:
            try:
                with Image.open(self._store.input_path(owner, n)) as image:
                    return image.convert("RGB")
            except OSError:
                raise TaskNotFound(f"The sandbox lost the images of job {owner}.") from None

        return [
            self._cached(("input", owner, n), functools.partial(load, n))
            for n in range(spec.n_inputs)
        ]

    def _blend(self, spec: Spec, cell: int, size: Size) -> Image.Image:
        fitted = [ImageOps.fit(img, size, Image.Resampling.BICUBIC) for img in self._inputs(spec)]
        rng = Random(mix("blend", spec.seed, cell))
        out = fitted[0]
        for n, image in enumerate(fitted[1:], start=1):
            out = Image.composite(image, out, _blend_mask(cell, n, len(fitted), size, rng))
        if cell != 1:
            width, height = size
            palette = palette_of(out)
            draw = ImageDraw.Draw(out, "RGBA")
            for _ in range(3):
                x, y = rng.random() * width, rng.random() * height
                r = rng.uniform(0.04, 0.12) * min(width, height)
                draw.ellipse((x - r, y - r, x + r, y + r), fill=rgb(rng.choice(palette), 90))
        return out

    def _swap_face(self, spec: Spec, cell: int, size: Size) -> Image.Image:
        source, target = self._inputs(spec)[:2]
        canvas = target.resize(size, Image.Resampling.BICUBIC)
        width, height = size
        # The "face": the source's middle, in an oval where a portrait's face would be.
        face_w = max(4, round(min(width, height) * 0.3))
        face_h = max(4, round(face_w * 1.25))
        face = ImageOps.fit(source, (face_w, face_h), Image.Resampling.BICUBIC)
        mask = Image.new("L", (face_w, face_h), 0)
        ImageDraw.Draw(mask).ellipse((0, 0, face_w - 1, face_h - 1), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, face_w / 40)))
        x, y = (width - face_w) // 2, max(0, round(height * 0.36) - face_h // 2)
        canvas.paste(face, (x, y), mask)
        ring = rgb(tint(palette_of(source)[0], 0.5, 0.3, 0.3))
        ImageDraw.Draw(canvas).ellipse(
            (x, y, x + face_w - 1, y + face_h - 1), outline=ring, width=max(1, face_w // 40)
        )
        return canvas


def _redraw_lasso(canvas: Image.Image, polygon: list[list[float]], scene: Scene) -> None:
    """Paint a new scene into one lasso of `canvas`, and nowhere else: the pixels are
    media.draw_mask's, the very mask other providers are sent. Inside, the new scene
    melts in from the outline (a quarter at the edge, whole further in), so that even a
    lasso a pixel thin visibly changes."""
    shape = media.draw_mask(canvas.size, [], [polygon])
    box = shape.getbbox()
    if box is None:
        return
    inside = shape.crop(box)
    radius = min(inside.size) / 20
    soft = inside.filter(ImageFilter.GaussianBlur(radius)) if radius >= 1 else inside
    mask = ImageChops.multiply(inside, soft.point(lambda v: 64 + v * 191 // 255))
    canvas.paste(render_scene(scene, inside.size), box[:2], mask)


def _imagine_scene(spec: Spec, cell: int) -> Scene:
    """One cell of an imagine grid."""
    palette = (
        [as_hsv(c) for c in spec.palette]
        if spec.palette
        else palette_from_text(spec.text, spec.seed, spec.params.get(Param.NO, ""))
    )
    rng = Random(mix("cell", spec.seed, cell))
    # Each cell gets its own layout and a turn of the palette: four distinct pictures
    # that still belong together, like a Midjourney grid.
    layouts = list(LAYOUTS)
    Random(mix("layouts", spec.seed)).shuffle(layouts)
    turn = rng.uniform(-0.05, 0.05)
    cell_palette = tuple(tint(c, turn) for c in palette)
    return Scene(mix("scene", spec.seed, cell), cell_palette, layouts[cell - 1], caption=spec.text)


def _blend_mask(cell: int, n: int, count: int, size: Size, rng: Random) -> Image.Image:
    """Where image `n` of `count` shows over those before it. Each cell mixes the images
    its own way: evenly, left to right, top to bottom, or from the centre out; the seed
    moves the seams."""
    if cell == 1:
        return Image.new("L", size, round(255 / (n + 1)))
    where = min(0.9, max(0.1, n / count + rng.uniform(-0.1, 0.1)))
    if cell == 4:
        ramp = Image.radial_gradient("L")
    else:
        ramp = Image.linear_gradient("L")
        if cell == 2:
            ramp = ramp.rotate(90)
        ramp = ImageOps.invert(ramp)
    # A soft step at `where`: 0 before, 255 after, over about a sixth.
    ramp = ramp.point(lambda v: round(255 * min(1, max(0, (v / 255 - where) * 6 + 0.5))))
    mask = ramp.resize(size, Image.Resampling.BILINEAR)
    return ImageOps.invert(mask) if cell == 4 else mask
