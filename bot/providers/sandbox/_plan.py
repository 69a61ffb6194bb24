"""Planning a task: what each action makes, decided once, at submit.

A plan is the task's spec (and the input images to keep); everything drawn later
follows from it. One function per action: `_NEW_JOBS` for the actions that start from
nothing but the request, `_FOLLOW_UPS` for those that act on an earlier job, which
first pass the checks every follow-up needs (`_finished_parent`, `_child`). Planning
runs in a worker thread: it may decode images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from PIL import Image, ImageOps

from bot import media
from bot.providers.base import ImageInput, PromptRejected, SubmitRequest, TaskState
from bot.providers.sandbox._hashing import mix
from bot.providers.sandbox._palette import palette_of
from bot.providers.sandbox._spec import Spec, dims
from bot.providers.sandbox._texts import describe_texts, shorten_texts, split_prompt
from bot.vocab import BLEND_DIMENSIONS, PAN_VARIANTS, ZOOM_VARIANTS, Action, Param

MAX_UPSCALE_SIDE = 4096  # Upscale (Subtle/Creative) doubles, up to this long side
MAX_RATIO = 4.0  # the widest (and, inverted, tallest) aspect ratio drawn
MAX_CHAIN = 30  # follow-ups of follow-ups: each level is re-rendered from the first

_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*")
_BLEND_RATIOS = {"PORTRAIT": 2 / 3, "SQUARE": 1.0, "LANDSCAPE": 3 / 2}

Planned = tuple[Spec, list[bytes]]  # the spec, and the input images to store with it


@dataclass(frozen=True)
class Ask:
    """One submit, as planning sees it."""

    request: SubmitRequest
    task_id: str
    now: float
    parent: Spec | None  # the job a follow-up acts on, read from the store
    provider: str  # the provider's name, for errors
    size: int  # long side of results
    duration: float  # seconds a job takes

    def reject(self, message: str) -> PromptRejected:
        return PromptRejected(message, provider=self.provider)


def plan(ask: Ask) -> Planned:
    """The task `ask` starts, or PromptRejected saying why it cannot start."""
    base = _base(ask)
    action = ask.request.action
    new_job = _NEW_JOBS.get(action)
    if new_job is not None:
        return new_job(ask, base)
    parent = _finished_parent(ask)
    child = _child(ask, base, parent)
    follow_up = _FOLLOW_UPS.get(action)
    if follow_up is None:
        raise ask.reject(f"The sandbox does not know the action {action.value!r}.")
    return follow_up(ask, child, parent), []


def _words(request: SubmitRequest) -> str:
    return request.text.strip() or split_prompt(request.prompt)[0]


def _params(request: SubmitRequest) -> dict[str, str]:
    return {str(k): str(v) for k, v in request.params.items()}


def _base(ask: Ask) -> Spec:
    """The task as every action starts it: the request's words, parameters and seed."""
    request = ask.request
    words, params = _words(request), _params(request)
    return Spec(
        id=ask.task_id,
        action=request.action.value,
        draw=request.action.value,
        prompt=request.prompt,
        text=words,
        params=params,
        seed=_seed(ask, params, words),
        submitted_at=ask.now,
        duration=ask.duration,
        long=ask.size,
    )


# --------------------------------------------------------------------------- new jobs


def _imagine(ask: Ask, base: Spec) -> Planned:
    images = [_open_input(ask, i) for i in ask.request.images[:1]]
    palette = [list(c) for c in palette_of(images[0])] if images else []
    return dataclasses.replace(base, grid=True, ratio=_ratio(ask, base.params), palette=palette), []


def _describe(ask: Ask, base: Spec) -> Planned:
    if not ask.request.images:
        raise ask.reject("Describe needs an image: attach one (the sandbox cannot fetch links).")
    texts = describe_texts(_open_input(ask, ask.request.images[0]))
    return dataclasses.replace(base, texts=texts, long=0), []


def _shorten(ask: Ask, base: Spec) -> Planned:
    if not base.text:
        raise ask.reject("Shorten needs a prompt.")
    texts = shorten_texts(base.text, split_prompt(ask.request.prompt)[1])
    return dataclasses.replace(base, texts=texts, long=0), []


def _blend(ask: Ask, base: Spec) -> Planned:
    request = ask.request
    if not 2 <= len(request.images) <= 5:
        raise ask.reject(f"Blend takes 2 to 5 images, not {len(request.images)}.")
    if request.dimensions not in BLEND_DIMENSIONS:
        raise ask.reject(f"Blend dimensions must be one of {', '.join(BLEND_DIMENSIONS)}.")
    stored = [_store_input(ask, _open_input(ask, i)) for i in request.images]
    # The same images blend the same way: the seed comes from them, not from words.
    digest = hashlib.blake2b(b"".join(stored), digest_size=8).hexdigest()
    spec = dataclasses.replace(
        base,
        grid=True,
        ratio=_BLEND_RATIOS[request.dimensions],
        dimensions=request.dimensions,
        n_inputs=len(stored),
        seed=_seed(ask, base.params, f"blend {digest}"),
    )
    return spec, stored


def _swap_face(ask: Ask, base: Spec) -> Planned:
    if len(ask.request.images) != 2:
        raise ask.reject("Face swap takes two images: the face, then the picture to put it in.")
    opened = [_open_input(ask, i) for i in ask.request.images]
    stored = [_store_input(ask, i) for i in opened]
    target = opened[1]
    spec = dataclasses.replace(
        base, ratio=target.width / target.height, n_inputs=2, long=min(ask.size, max(target.size))
    )
    return spec, stored


_NEW_JOBS: dict[Action, Callable[[Ask, Spec], Planned]] = {
    Action.IMAGINE: _imagine,
    Action.DESCRIBE: _describe,
    Action.SHORTEN: _shorten,
    Action.BLEND: _blend,
    Action.SWAP_FACE: _swap_face,
}


# --------------------------------------------------------------------------- follow-ups


def _finished_parent(ask: Ask) -> Spec:
    """The job a follow-up acts on, when it has finished images to act on."""
    parent = ask.parent
    if parent is None:
        raise ask.reject(f"{ask.request.action.value} needs the job it acts on.")
    if not parent.makes_images:
        raise ask.reject(f"That {parent.action} job has no image to act on.")
    if parent.depth + 1 > MAX_CHAIN:
        raise ask.reject(
            "This chain of edits is too long for the sandbox; start again from a new /imagine."
        )
    state, _ = parent.state(ask.now)
    if state is not TaskState.SUCCEEDED:
        raise ask.reject(f"That job is {state.value}, not finished; wait for its images.")
    return parent


def _child(ask: Ask, base: Spec, parent: Spec) -> Spec:
    """A follow-up as every action starts it: drawn from one image of its parent."""
    request = ask.request
    # A single image is image 1; so is a grid, for the buttons that act on all of it.
    index = request.index if parent.grid and 1 <= request.index <= 4 else 1
    child = dataclasses.replace(
        base,
        parent=parent.id,
        index=index,
        depth=parent.depth + 1,
        ratio=parent.ratio,
        variant=request.variant,
    )
    if not base.text:
        # Buttons carry no words: the job keeps its parent's (Vary (Region) redraws
        # with them, as Midjourney does unless remix gives new ones).
        child = dataclasses.replace(child, prompt=parent.prompt, text=parent.text)
    if not request.params.get(Param.SEED):
        # A follow-up is a new picture: a fresh seed, as on Midjourney.
        child = dataclasses.replace(child, seed=secrets.randbelow(2**32))
    return child


def _need_grid_cell(ask: Ask, parent: Spec, letter: str) -> None:
    """U1-4 and V1-4 pick one image of a grid."""
    if not parent.grid:
        raise ask.reject(f"{letter}1-4 act on a grid, and this job is a single image.")
    if not 1 <= ask.request.index <= 4:
        raise ask.reject(f"Pick image 1-4 of the grid, not {ask.request.index}.")


def _upscale(ask: Ask, child: Spec, parent: Spec) -> Spec:
    _need_grid_cell(ask, parent, "U")
    return dataclasses.replace(child, long=parent.long)


def _variation(ask: Ask, child: Spec, parent: Spec) -> Spec:
    _need_grid_cell(ask, parent, "V")
    # Low variation (the member's setting): drawn as subtly as Vary (Subtle).
    draw = Action.VARY_SUBTLE.value if ask.request.strength == "low" else child.draw
    return dataclasses.replace(child, grid=True, long=parent.long, draw=draw)


def _reroll(ask: Ask, child: Spec, parent: Spec) -> Spec:
    if not parent.grid:
        raise ask.reject("Reroll acts on a grid, and this job is a single image.")
    # A reroll draws what its parent drew, again, with a new seed: the parent's spec
    # (its kind, parent, image, shape, inputs, ...) as a new task.
    spec = dataclasses.replace(
        parent,
        id=child.id,
        action=child.action,
        seed=child.seed,
        submitted_at=child.submitted_at,
        duration=child.duration,
        inputs_of=parent.inputs_of or (parent.id if parent.n_inputs else None),
        texts=[],
        cancelled=False,
        cancelled_at=None,
    )
    request = ask.request
    if parent.draw == Action.IMAGINE and (request.text.strip() or request.prompt.strip()):
        # With a new prompt (remix) an imagine takes the new words and parameters.
        params = _params(request)
        spec = dataclasses.replace(
            spec,
            prompt=request.prompt,
            text=_words(request),
            params=params,
            ratio=_ratio(ask, params),
        )
    return spec


def _upscale_2x(ask: Ask, child: Spec, parent: Spec) -> Spec:
    """Upscale (Subtle) and (Creative): twice the image's own size."""
    return dataclasses.replace(
        child, long=min(MAX_UPSCALE_SIDE, parent.image_long(child.index) * 2)
    )


def _vary(ask: Ask, child: Spec, parent: Spec) -> Spec:
    """Vary (Subtle) and (Strong): a grid of variations of one image."""
    return dataclasses.replace(child, grid=True)


def _zoom(ask: Ask, child: Spec, parent: Spec) -> Spec:
    request = ask.request
    if request.variant not in ZOOM_VARIANTS:
        raise ask.reject(f"Zoom is one of {', '.join(ZOOM_VARIANTS)}, not {request.variant!r}.")
    ratio = parent.ratio
    if request.variant == "custom":
        raw = request.params.get(Param.ZOOM, "2")
        try:
            zoom = float(raw)
        except ValueError:
            zoom = math.nan
        if not 1.0 <= zoom <= 2.0:
            raise ask.reject(f"--zoom must be between 1 and 2, not {raw!r}.")
        if request.params.get(Param.ASPECT):
            ratio = _ratio(ask, request.params)  # Custom Zoom may change the shape
    else:
        zoom = float(request.variant)
    return dataclasses.replace(child, grid=True, zoom=zoom, ratio=ratio)


def _pan(ask: Ask, child: Spec, parent: Spec) -> Spec:
    variant = ask.request.variant
    if variant not in PAN_VARIANTS:
        raise ask.reject(f"Pan goes {', '.join(PAN_VARIANTS)}, not {variant!r}.")
    ratio = parent.ratio * (1.5 if variant in ("left", "right") else 1 / 1.5)
    if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
        raise ask.reject(
            "Panning further would make the picture too narrow "
            f"(the sandbox draws up to {MAX_RATIO:g}:1)."
        )
    return dataclasses.replace(child, grid=True, ratio=ratio)


def _inpaint(ask: Ask, child: Spec, parent: Spec) -> Spec:
    # The areas are kept as the fractions the user chose; each cell converts them with
    # media.pixel_box, the one conversion the masks sent to other providers use. An
    # area that covers no pixel of the cells is no area.
    cell = dims(child.ratio, child.long // 2)
    regions = [
        [float(v) for v in region]
        for region in ask.request.regions
        if media.pixel_box(region, cell) is not None
    ]
    # Lassos likewise, with media.pixel_polygon: any lasso with a point has a pixel.
    polygons = [
        [[float(x), float(y)] for x, y in polygon]
        for polygon in ask.request.polygons
        if media.pixel_polygon(polygon, cell)
    ]
    if not regions and not polygons:
        raise ask.reject("Vary (Region) needs at least one area to redraw.")
    return dataclasses.replace(child, grid=True, regions=regions, polygons=polygons)


def _make_square(ask: Ask, child: Spec, parent: Spec) -> Spec:
    # Midjourney's Make Square outpaints the picture to 1:1: drawn as a zoom out by a
    # factor of 1 into a square frame, the parent kept whole, the new sides filled in.
    if parent.grid:
        raise ask.reject("Make Square acts on one image; upscale one first.")
    return dataclasses.replace(child, grid=True, zoom=1.0, ratio=1.0, draw=Action.ZOOM.value)


_FOLLOW_UPS: dict[Action, Callable[[Ask, Spec, Spec], Spec]] = {
    Action.UPSCALE: _upscale,
    Action.VARIATION: _variation,
    Action.REROLL: _reroll,
    Action.UPSCALE_SUBTLE: _upscale_2x,
    Action.UPSCALE_CREATIVE: _upscale_2x,
    Action.VARY_SUBTLE: _vary,
    Action.VARY_STRONG: _vary,
    Action.ZOOM: _zoom,
    Action.PAN: _pan,
    Action.INPAINT: _inpaint,
    Action.MAKE_SQUARE: _make_square,
}


# --------------------------------------------------------------------------- inputs


def _seed(ask: Ask, params: Mapping[str, str], words: str) -> int:
    """--seed, else one from the words: the same prompt draws the same picture."""
    raw = params.get(Param.SEED)
    if raw is None or raw == "":
        return mix("seed", " ".join(words.lower().split())) % 2**32
    try:
        seed = int(raw)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2**32:
        raise ask.reject(f"--seed must be a whole number from 0 to 4294967295, not {raw!r}.")
    return seed


def _ratio(ask: Ask, params: Mapping[str, str]) -> float:
    """Width / height from --ar; square without it."""
    raw = params.get(Param.ASPECT)
    if not raw:
        return 1.0
    match = _RATIO.fullmatch(raw)
    width, height = (float(match[1]), float(match[2])) if match else (0.0, 0.0)
    if width <= 0 or height <= 0:
        raise ask.reject(f"--ar must look like 3:2, not {raw!r}.")
    ratio = width / height
    if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
        raise ask.reject(f"--ar {raw} is too extreme; the sandbox draws from 1:4 to 4:1.")
    return ratio


def _open_input(ask: Ask, image: ImageInput) -> Image.Image:
    try:
        media.inspect_image(image.data)
        with Image.open(io.BytesIO(image.data)) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    except media.MediaError as err:
        raise ask.reject(str(err)) from None


def _store_input(ask: Ask, image: Image.Image) -> bytes:
    """An input image as kept in the state dir: no larger than the results need."""
    copy = image.copy()
    copy.thumbnail((ask.size, ask.size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "PNG", compress_level=1)
    return out.getvalue()
