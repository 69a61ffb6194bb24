"""The rules a front end's request must meet that need no I/O: the prompt, the images
and regions an action takes, and the shape of the job it becomes.

The engine (`service.Engine._prepare`) applies them in order, with the checks that do
need the store (the parent job, the spending limits) in between.
"""

from __future__ import annotations

from bot.engine.models import Job, JobRequest, new_job_id
from bot.engine.prompt import ParsedPrompt, PromptError, check_supported, parse_prompt
from bot.i18n import Text
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


def check_inputs(request: JobRequest, max_images: int) -> None:
    """The images, blend shape and regions the request's action needs."""
    action, label = request.action, action_name(request.action)
    lo, hi = IMAGE_COUNTS.get(action, (0, max_images))
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
    if action is Action.INPAINT and not request.regions:
        raise RequestError(Text("Vary (Region) needs at least one region to redraw."))


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
        dimensions=request.dimensions,
        origin=request.origin,
        user_id=request.user_id,
        guild_id=request.guild_id,
        channel_id=request.channel_id,
        created_at=now,
        deadline_at=deadline,
    )
