"""Job events: the engine announces, front ends listen.

Listeners are plain callables run inline by `publish`; they must be quick (record the
news, wake a task) because the runner calls them on its hot path. A listener that
raises is logged and kept: one broken front end must not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.engine.models import EventKind, Job, JobUpdate

log = logging.getLogger(__name__)

Listener = Callable[[JobUpdate], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, job: Job, kind: EventKind) -> None:
        if not self._listeners:
            return  # no copy to make on the runner's hot path
        update = JobUpdate(job=job.copy(), kind=kind)
        for listener in list(self._listeners):
            try:
                listener(update)
            except Exception:
                log.exception("a job listener failed on %s (%s)", job.id, kind)
