"""A task as the sandbox keeps it: its spec, its progress, and its files in the state dir.

State: one JSON file per task in `<state_dir>/tasks` (plus the input images of blend and
face swap in `<state_dir>/inputs`), written atomically, so a task started by one process
finishes in the next. The JSON format is the one the sandbox has always written ("v": 1);
keep it readable by older and newer processes alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.providers.base import TaskState
from bot.vocab import Action, Param

# The name the single-module sandbox logged under, so that logging settings still apply.
log = logging.getLogger("bot.providers.sandbox")

QUEUED_SHARE = 0.1  # the first tenth of a job's duration is spent "in the queue"
TASK_ID = re.compile(r"[0-9]{8,40}")
# The kinds of task that make texts, not images.
_TEXT_ONLY = frozenset({Action.DESCRIBE, Action.SHORTEN})


@dataclass(frozen=True)
class Spec:
    """Everything needed to answer for a task and to draw its images, as stored."""

    id: str
    action: str  # the Action the user asked for
    draw: str  # what is drawn: the action, except that a reroll draws its parent's kind
    prompt: str = ""
    text: str = ""  # the words
    params: dict[str, str] = field(default_factory=dict)
    # The job whose image this one is drawn from. A reroll redraws what its parent drew,
    # so it takes over its parent's parent (and draw, index, variant, ...).
    parent: str | None = None
    index: int = 0  # which image of the parent grid (1-4); 1 for a single-image parent
    variant: str = ""
    seed: int = 0
    submitted_at: float = 0.0
    duration: float = 0.0
    grid: bool = False
    ratio: float = 1.0  # width / height of one image (of a cell, for a grid)
    long: int = 0  # long side of the result: of the whole grid, or of the single image
    depth: int = 0  # follow-up depth: 0 for imagine, blend, ...
    regions: list[list[float]] = field(default_factory=list)
    polygons: list[list[list[float]]] = field(default_factory=list)  # lassos: [[x, y], ...]
    zoom: float = 1.0
    dimensions: str = ""
    inputs_of: str | None = None  # the task whose stored input images this one uses
    n_inputs: int = 0
    palette: list[list[float]] = field(default_factory=list)  # HSV, from image prompts
    texts: list[str] = field(default_factory=list)
    cancelled: bool = False
    cancelled_at: float | None = None

    def to_json(self) -> bytes:
        return json.dumps({"v": 1, **dataclasses.asdict(self)}, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Spec:
        data = json.loads(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def makes_images(self) -> bool:
        return self.draw not in _TEXT_ONLY

    def image_size(self) -> tuple[int, int]:
        """Size of the result image (the whole grid, for grids)."""
        if self.grid:
            cell_w, cell_h = dims(self.ratio, self.long // 2)
            return cell_w * 2, cell_h * 2
        return dims(self.ratio, self.long)

    def image_long(self, cell: int) -> int:
        """Native long side of one image: a grid cell is half the grid."""
        return self.long // 2 if self.grid and cell else self.long

    def state(self, now: float) -> tuple[TaskState, float]:
        """(state, progress 0-100) at `now`: progress comes from the clock alone."""
        if self.cancelled:
            return TaskState.CANCELLED, 0.0
        elapsed = now - self.submitted_at
        if elapsed >= self.duration:
            return TaskState.SUCCEEDED, 100.0
        queued = self.duration * QUEUED_SHARE
        if elapsed < queued:
            return TaskState.QUEUED, 0.0
        share = (elapsed - queued) / (self.duration - queued)
        return TaskState.RUNNING, float(min(99, max(0, math.floor(share * 100))))


def content_key(spec: Spec) -> tuple[Any, ...]:
    """What an image depends on. Imagine jobs with the same words, seed and shape draw
    the same picture, so caches share it across tasks (benchmarks submit many alike)."""
    if spec.draw == Action.IMAGINE:
        palette = tuple(tuple(c) for c in spec.palette)
        no = spec.params.get(Param.NO, "")
        return (Action.IMAGINE.value, spec.seed, spec.text, palette, spec.ratio, no)
    return ("task", spec.id)


def dims(ratio: float, long: int) -> tuple[int, int]:
    """(width, height) of a picture of this shape and long side."""
    long = max(1, long)
    if ratio >= 1:
        return long, max(1, round(long / ratio))
    return max(1, round(long * ratio)), long


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class SpecStore:
    """Task specs: the recent ones in memory, all of them in the state dir.

    `load` and `save` touch the disk: call them from a worker thread. `cached` is
    memory only, for the event loop.
    """

    def __init__(self, state_dir: Path, max_in_memory: int = 20_000) -> None:
        self.tasks_dir = state_dir / "tasks"
        self.inputs_dir = state_dir / "inputs"
        self._specs: OrderedDict[str, Spec] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_in_memory

    def cached(self, task_id: str) -> Spec | None:
        return self._specs.get(task_id)

    def remember(self, spec: Spec) -> None:
        with self._lock:
            self._specs[spec.id] = spec
            self._specs.move_to_end(spec.id)
            while len(self._specs) > self._max:
                self._specs.popitem(last=False)

    def load(self, task_id: str) -> Spec | None:
        """The spec from memory, else from its file."""
        spec = self._specs.get(task_id)
        if spec is not None or not TASK_ID.fullmatch(task_id):
            return spec
        path = self.tasks_dir / f"{task_id}.json"
        try:
            spec = Spec.from_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as err:
            log.warning("sandbox: cannot read task file %s: %s", path, err)
            return None
        self.remember(spec)
        return spec

    def save(self, spec: Spec, inputs: Sequence[bytes] = ()) -> None:
        """Write the task's input images (first) and its spec."""
        for n, data in enumerate(inputs):
            write_atomic(self.input_path(spec.id, n), data)
        write_atomic(self.tasks_dir / f"{spec.id}.json", spec.to_json())

    def input_path(self, owner: str, n: int) -> Path:
        return self.inputs_dir / f"{owner}-{n}.png"

    def count(self) -> int:
        """Probe that the state dir is writable; the number of tasks kept there."""
        self.tasks_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.tasks_dir / ".probe", b"ok")
        (self.tasks_dir / ".probe").unlink()
        return sum(1 for e in os.scandir(self.tasks_dir) if e.name.endswith(".json"))
