"""A midjourney-proxy task that made video: Animate, a selected video, Extend.

As trueai serves them (TaskInfo, TaskService.SubmitAction; Discord accounts pass
Midjourney's own buttons through): pressing `MJ::JOB::animate_{high,low}::1::<h>::SOLO`
on an upscale starts a task whose action is VIDEO; done, it holds four videos
(`videoUrls`: `[{"url", "thumbnail"}]`, `imageUrl` the video link itself) and U1-U4
buttons `MJ::JOB::video_virtual_upscale::<n>::<h>`. U<n> gives a task (action UPSCALE,
`contentType` "video/mp4", `imageUrl` the chosen video, `videoUrls` copied from its
parent) with `MJ::JOB::animate_{high,low}_extend::1::<h>`: Extend (High / Low motion),
another VIDEO task of four.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.providers.mj_proxy._tables import (
    VIDEO_GRID_BUTTON,
    VIDEO_SERVER_ACTIONS,
    VIDEO_SINGLE_BUTTON,
    mapping,
    text_of,
)
from bot.vocab import VIDEO_ACTIONS, Action

MAX_VIDEOS = 4  # Midjourney's batch: --bs 1, 2 or 4
_MP4_LINK = re.compile(r"\.mp4(?:$|[?#])", re.IGNORECASE)


def looks_like_video_link(url: str) -> bool:
    """A link whose path ends in .mp4 (a running video task's imageUrl may be one)."""
    return bool(_MP4_LINK.search(url))


def listed_videos(task: Mapping[str, Any]) -> list[str]:
    """`videoUrls`: a list of {"url": ...} (trueai) or of plain strings."""
    raw = task.get("videoUrls")
    if not isinstance(raw, list):
        return []
    urls = [text_of(mapping(item).get("url")) if isinstance(item, dict) else text_of(item)
            for item in raw]  # fmt: skip
    return [url for url in urls if url]


def is_video(
    task: Mapping[str, Any], custom_ids: list[str], server_action: str, asked: Action | None
) -> bool:
    """Whether a finished task's result is video rather than images."""
    return (
        server_action in VIDEO_SERVER_ACTIONS
        or asked in VIDEO_ACTIONS
        or text_of(task.get("contentType")).lower().startswith("video/")
        or bool(text_of(task.get("videoUrl")) or listed_videos(task))
        or any(cid.startswith(VIDEO_GRID_BUTTON) or VIDEO_SINGLE_BUTTON.match(cid)
               for cid in custom_ids)
    )  # fmt: skip


def is_single_video(custom_ids: list[str], server_action: str, asked: Action | None) -> bool:
    """One selected video (U<n> of a video grid), not a batch of four."""
    if any(cid.startswith(VIDEO_GRID_BUTTON) for cid in custom_ids):
        return False
    if any(VIDEO_SINGLE_BUTTON.match(cid) for cid in custom_ids):
        return True
    return server_action == "UPSCALE" or asked is Action.UPSCALE


def video_urls(task: Mapping[str, Any], single: bool) -> list[str]:
    """The videos of a finished task, in order. A selected video is `imageUrl` (trueai
    copies the parent's four into `videoUrls` beside it); a batch is `videoUrls`."""
    image_url, video_url = text_of(task.get("imageUrl")), text_of(task.get("videoUrl"))
    listed = listed_videos(task)
    if single:
        first = image_url or video_url or (listed[0] if listed else "")
        return [first] if first else []
    if listed:
        return listed[:MAX_VIDEOS]
    first = video_url or image_url
    return [first] if first else []
