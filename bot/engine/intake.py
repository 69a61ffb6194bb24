"""The rules a front end's request must meet that need no I/O: the prompt, the images
and regions an action takes, and the shape of the job it becomes.

The engine (`service.Engine._prepare`) applies them in order, with the checks that do
need the store (the parent job, the spending limits) in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.engine.models import Job, JobRequest, Polygon, new_job_id
from bot.engine.prompt import ParsedPrompt, PromptError, check_supported, parse_prompt
from bot.i18n import Text
from bot.mask_geometry import signed_area
from bot.providers.base import Provider
from bot.vocab import BLEND_DIMENSIONS, Action, action_name

# Actions that take a prompt of their own (not a follow-up of a job).
PROMPTED = frozenset({Action.IMAGINE, Action.SHORTEN})
# (fewest, most) images an action takes; others take up to the provider's max_images.
IMAGE_COUNTS = {
    Action.DESCRIBE: (1, 1),
    Action.BLEND: (2, 5),
    Action.SWAP_FACE: (2, 2),
}
# Vary (Region): how many areas (rectangles and lassos) a request may draw, and the
# (fewest, most) points of a lasso. 200 points is a smooth freehand outline; more is a
# stroke the editor forgot to thin.
MAX_AREAS = 20
POLYGON_POINTS = (3, 200)


class RequestError(ValueError):
    """A request the engine refuses before anything is stored or sent. User-facing:
    `str(err)` is shown to the person who asked (and only to them).

    `reason` is a short, stable word for the audit trail and managers ("budget",
    "banned word", "mode not allowed", ...), which never holds the user's own text.
    `text` is the message itself: a `Text` the front end shows in the asker's language
    (a plain str is shown as it is, e.g. a provider's own words).
    """

    def __init__(self, message: str, *, reason: str = "invalid request") -> None:
        super().__init__(message)
        self.text = message
        self.reason = reason


def parse_request_prompt(
    request: JobRequest, parent: Job | None, provider: Provider
) -> ParsedPrompt | None:
    """The request's prompt, checked against what `provider` accepts: its own, or else
    its parent's; None for an action without a prompt."""
    text = request.prompt.strip()
    if request.action in PROMPTED or (text and parent is not None):
        pass  # a prompt of its own: a new one, or a remix / custom zoom of the parent
    elif parent is not None:
        text = parent.prompt
    else:
        return None
    if not text:
        if request.action in PROMPTED:
            raise RequestError(Text("The prompt is empty; describe what you want to see."))
        return None
    try:
        parsed = parse_prompt(text)
        check_supported(parsed, provider.accepted_params, provider.name)
    except PromptError as err:
        raise RequestError(err.text) from None
    return parsed


def check_inputs(request: JobRequest, provider: Provider) -> None:
    """The images, blend shape and regions the request's action needs."""
    action, label = request.action, action_name(request.action)
    lo, hi = IMAGE_COUNTS.get(action, (0, provider.max_images))
    if not lo <= len(request.images) <= hi:
        given = len(request.images)
        if lo == hi:
            raise RequestError(
                Text(
                    "{action} takes {count} images; you gave {given}.",
                    action=label,
                    count=lo,
                    given=given,
                )
            )
        raise RequestError(
            Text(
                "{action} takes {low} to {high} images; you gave {given}.",
                action=label,
                low=lo,
                high=hi,
                given=given,
            )
        )
    if action is Action.BLEND and request.dimensions not in BLEND_DIMENSIONS:
        raise RequestError(
            Text("Blend dimensions must be one of {names}.", names=", ".join(BLEND_DIMENSIONS))
        )
    if action is Action.INPAINT and not request.regions and not request.polygons:
        raise RequestError(Text("Vary (Region) needs at least one region to redraw."))
    areas = len(request.regions) + len(request.polygons)
    if action is Action.INPAINT and areas > MAX_AREAS:
        raise RequestError(
            Text(
                "Vary (Region) takes at most {most} areas; you drew {areas}. "
                "Merge some of them and submit again.",
                most=MAX_AREAS,
                areas=areas,
            )
        )
    if request.polygons:
        check_polygons(request, provider)


def check_polygons(request: JobRequest, provider: Provider) -> None:
    """Lassos: only for Vary (Region), only where the provider takes them (never turned
    into boxes behind the member's back), each a real area of the image."""
    if request.action is not Action.INPAINT:
        raise RequestError(
            Text(
                "Only Vary (Region) takes drawn areas; {action} does not. "
                "Send it again without them.",
                action=action_name(request.action),
            )
        )
    if not provider.takes_polygons:
        raise RequestError(
            Text(
                "{provider} cannot redraw a freehand (lasso) area, only rectangles. "
                "Draw the areas with the rectangle tool, or use a provider that takes lassos.",
                provider=provider.name,
            )
        )
    lo, hi = POLYGON_POINTS
    for n, polygon in enumerate(request.polygons, 1):
        if len(polygon) < lo:
            raise RequestError(
                Text(
                    "Drawn area {n} has {points} points; a lasso needs at least {least}. "
                    "Draw around the part to redo.",
                    n=n,
                    points=len(polygon),
                    least=lo,
                )
            )
        if len(polygon) > hi:
            raise RequestError(
                Text(
                    "Drawn area {n} has {points} points; a lasso takes at most {most}. "
                    "Draw it again with a simpler outline.",
                    n=n,
                    points=len(polygon),
                    most=hi,
                )
            )
        if not all(_is_point(point) for point in polygon):
            raise RequestError(
                Text(
                    "Drawn area {n} has a point that is not a pair of numbers; draw it again.",
                    n=n,
                )
            )
        if signed_area(clamped_polygon(polygon)) == 0:
            raise RequestError(
                Text(
                    "Drawn area {n} encloses no part of the image (a line, or outside the "
                    "picture); draw around the part to redo.",
                    n=n,
                )
            )


def _is_point(point: Sequence[object]) -> bool:
    return len(point) == 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in point
    )


def clamped_polygon(polygon: Polygon) -> Polygon:
    """A checked lasso as stored: its points as floats, clamped to the image (0..1)."""
    return tuple((min(1.0, max(0.0, float(x))), min(1.0, max(0.0, float(y)))) for x, y in polygon)


def new_job(
    request: JobRequest,
    parent: Job | None,
    provider: str,
    parsed: ParsedPrompt | None,
    *,
    now: float,
    deadline: float,
) -> Job:
    """The job for a checked request: its prompt, parameters and mode are its own, or
    else its parent's."""
    return Job(
        id=new_job_id(),
        action=request.action,
        provider=provider,
        parent_id=parent.id if parent else None,
        index=request.index,
        variant=request.variant,
        strength=request.strength,
        prompt=parsed.raw if parsed else (parent.prompt if parent else ""),
        params=dict(parsed.params) if parsed else (dict(parent.params) if parent else {}),
        mode=(parsed.mode if parsed else None) or (parent.mode if parent else None),
        regions=list(request.regions),
        polygons=[clamped_polygon(polygon) for polygon in request.polygons],
        dimensions=request.dimensions,
        origin=request.origin,
        user_id=request.user_id,
        guild_id=request.guild_id,
        channel_id=request.channel_id,
        created_at=now,
        deadline_at=deadline,
    )
