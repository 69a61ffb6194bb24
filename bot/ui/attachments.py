"""Images people attach to commands: capped in bytes and in pixels, recognised by their
bytes, and stripped of their metadata (EXIF with GPS, XMP, text chunks) before anything
stores them or forwards them to a provider."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import discord

from bot import media
from bot.engine.models import ImageInput
from bot.i18n import Text
from bot.ui.replies import UserError


async def read_images(
    attachments: Sequence[discord.Attachment | None],
    max_bytes: int,
    max_pixels: int = media.DEFAULT_MAX_PIXELS,
) -> list[ImageInput]:
    """The attached images, in order, without metadata. Raises UserError naming the
    file at fault."""
    images: list[ImageInput] = []
    for attachment in attachments:
        if attachment is None:
            continue
        name = discord.utils.escape_markdown(attachment.filename)
        if attachment.size > max_bytes:
            raise UserError(
                Text(
                    "{name} is {size}; images up to {limit} are accepted.",
                    name=name,
                    size=_mib(attachment.size),
                    limit=_mib(max_bytes),
                )
            )
        try:
            data = await attachment.read()
        except (TimeoutError, discord.HTTPException, aiohttp.ClientError) as err:
            raise UserError(
                Text(
                    "{name} could not be downloaded from Discord ({error}).",
                    name=name,
                    error=str(err),
                )
            ) from None
        if len(data) > max_bytes:  # the size Discord reported may be wrong
            raise UserError(
                Text("{name} is larger than {limit}.", name=name, limit=_mib(max_bytes))
            )
        try:
            # The bytes decide (never the file name or Content-Type); the pixel cap is
            # checked from the header, before anything is decoded.
            clean = await media.a_strip_metadata(data, max_pixels)
        except media.MediaError as err:
            raise UserError(f"{name}: {err}") from None
        images.append(ImageInput(clean.data, clean.mime))
    return images


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"
