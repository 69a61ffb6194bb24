"""`atelier audit [--days N] [--csv]`, as a user runs it: a real process on a real store."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.cli_helpers import run_cli, write_config


def sandbox(folder: Path) -> dict[str, object]:
    return {"name": "sandbox", "kind": "sandbox", "duration": 0.2, "state_dir": str(folder / "sb")}


async def test_audit_lists_refusals_and_exports_csv(tmp_path: Path) -> None:
    write_config(tmp_path, [sandbox(tmp_path)], {"moderation": {"banned_words": ["gore"]}})
    refused = await run_cli("imagine", "a Gore scene", cwd=tmp_path)
    assert refused.code == 2 and "'gore'" in refused.err + refused.out
    assert (await run_cli("imagine", "  ", cwd=tmp_path)).code == 2

    table = await run_cli("audit", "--days", "2", cwd=tmp_path)
    assert table.code == 0, table.err
    header, *lines = table.out.splitlines()
    assert header.split()[:3] == ["when", "kind", "server"]
    assert len(lines) == 2 and all(" refusal " in line for line in lines)
    assert "(terminal)" in lines[0] and "imagine" in lines[0]
    assert "banned word (gore)" in lines[0] and "invalid request" in lines[1]

    exported = await run_cli("audit", "--csv", cwd=tmp_path)
    assert exported.code == 0, exported.err
    rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert [(r["kind"], r["outcome"], r["detail"]) for r in rows] == [
        ("refusal", "banned word", "gore"),
        ("refusal", "invalid request", "The prompt is empty; describe what you want to see."),
    ]
    assert rows[0]["action"] == "imagine" and float(rows[0]["at"]) > 0


async def test_audit_on_an_empty_store_says_so(tmp_path: Path) -> None:
    write_config(tmp_path, [sandbox(tmp_path)])
    ran = await run_cli("audit", "--days", "3", cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert "no audit entries in the last 3 day(s)" in ran.out
    exported = await run_cli("audit", "--csv", cwd=tmp_path)
    assert exported.out.splitlines() == [
        "at,kind,guild_id,channel_id,user_id,job_id,provider,action,credits,outcome,detail"
    ]
