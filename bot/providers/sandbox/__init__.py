"""The sandbox provider: a real, offline image provider for trying Atelier without a key.

It behaves like a midjourney-proxy server that happens to live in the bot's process:
tasks are queued, run with progress and blurry previews, and succeed with a 2x2 grid
and the buttons that go with it; every follow-up (U1-U4, V1-V4, reroll, upscale
subtle/creative, vary, zoom, pan, vary region), /describe, /blend, /shorten and face
swap is served natively.

The pictures are procedural, drawn with Pillow: palette, layout and shapes come from a
hash of the prompt and the seed (colour words in the prompt steer the palette), so the
same prompt and seed give the same bytes and different prompts give visibly different
pictures. Progress comes from the wall clock since submit: no background task, nothing
to resume.

The modules, in the order a task meets them:

- `_provider`: SandboxProvider, the provider protocol (submit, fetch, cancel,
  download, check).
- `_plan`: what each action makes, one function per action, decided at submit.
- `_spec`: the task as stored (one JSON file per task in `state_dir`), its progress.
- `_render`: draws a task's images on demand, from its spec and its parent's.
- `_scene`, `_paint`, `_palette`: the art: shapes, pixels, colours.
- `_texts`: /describe and /shorten.
- `_hashing`: the stable hash every random choice is seeded from.
"""

from bot.providers.sandbox._provider import ACCEPTED_PARAMS, SandboxProvider
from bot.providers.sandbox._texts import describe_texts, shorten_texts, split_prompt

__all__ = ["ACCEPTED_PARAMS", "SandboxProvider", "describe_texts", "shorten_texts", "split_prompt"]
