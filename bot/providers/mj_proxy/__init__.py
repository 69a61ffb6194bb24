"""The midjourney-proxy family: novicezk, trueai-org, midjourney-proxy-plus, new-api relays
and the aggregators built on them (佩奇/aigc369, ...). One protocol under `/mj`.

The servers disagree on details, so this adapter codes for all of them (see REFERENCE.md
section 1): three auth header styles, mode by path or by prompt, buttons by `customId`
(`/submit/action`) with the legacy `/submit/change` as fallback, MODAL tasks that wait for
`/submit/modal`, two error shapes, and three ways of saying "unknown task".

The modules, each private to this package:

- `_tables`: what the servers' words mean (status words, customIds, codes, phrases).
- `_errors`: their answers as the typed error family.
- `_wire`: the connection (HTTP helper, auth headers, paths) the steps share.
- `_submit`: the POST every submission shares; imagine, blend, describe, shorten, swap.
- `_buttons`: follow-ups by button, and the modal some of them open.
- `_fetch`: reading tasks, batched where the server can, else one by one.
- `_snapshot`: one task's JSON as a TaskSnapshot.
- `_video`: how a task that made video (Animate, U1-U4 of a video grid, Extend) reads.
- `_provider`: MjProxyProvider, wiring them to one configured server.
"""

from bot.providers.mj_proxy._provider import MjProxyProvider
from bot.providers.mj_proxy._snapshot import parse_progress, split_lines, split_numbered
from bot.providers.mj_proxy._tables import MJ_PARAM_NAMES, followup_for_custom_id

__all__ = [
    "MJ_PARAM_NAMES",
    "MjProxyProvider",
    "followup_for_custom_id",
    "parse_progress",
    "split_lines",
    "split_numbered",
]
