"""The terminal front end, run as a user runs it: `python -m bot ...` in a folder."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from PIL import Image

from tests.cli_helpers import run_cli, start_cli, write_config


async def test_imagine_with_no_config_writes_a_grid_and_four_images(tmp_path: Path) -> None:
    ran = await run_cli("imagine", "a lighthouse at dusk --ar 3:2", cwd=tmp_path)
    assert ran.code == 0, ran.err
    out = tmp_path / "out"
    grids = list(out.glob("*-grid.png"))
    singles = sorted(p for p in out.glob("*-[1-4].png"))
    assert len(grids) == 1 and len(singles) == 4
    for path in [*grids, *singles]:
        with Image.open(path) as image:
            width, height = image.size
        assert abs(width / height - 1.5) < 0.05, (path, image.size)
    assert "grid:" in ran.out and "image 4:" in ran.out
    assert (tmp_path / "data" / "atelier.db").exists()  # the built-in default store


async def test_repeat_is_refused_naming_the_parameter(tmp_path: Path) -> None:
    ran = await run_cli("imagine", "a cat --repeat 2", cwd=tmp_path)
    assert ran.code == 2
    assert "--repeat" in ran.err
    assert "Traceback" not in ran.err
    assert not (tmp_path / "out").exists()


async def test_overlong_prompt_is_refused_with_the_limit(tmp_path: Path) -> None:
    ran = await run_cli("imagine", "x" * 9000, cwd=tmp_path)
    assert ran.code == 2
    assert "8192" in ran.err and "9000" in ran.err


async def test_bad_config_names_file_key_and_problem(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[[providers]]\nname = "mj"\nkind = "mj-proxy"\nbase_url = "http://x"\n'
        'auth_style = "cookie"\n\n[engine]\njob_deadline_minuts = 5\n'
    )
    ran = await run_cli("check", cwd=tmp_path)
    assert ran.code == 2
    assert "config.toml" in ran.err
    assert "auth_style" in ran.err and "job_deadline_minuts" in ran.err
    assert "Traceback" not in ran.err


async def test_bad_provider_entry_names_the_missing_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[[providers]]\nname = "my mj"\nkind = "mj-proxy"\n')
    ran = await run_cli("check", cwd=tmp_path)
    assert ran.code == 2
    assert "providers[0 'my mj'].base_url: required key is missing" in ran.err, ran.err
    assert "providers[0 'my mj'].name: use only letters" in ran.err, ran.err


async def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [
            {
                "name": "mj",
                "kind": "mj-proxy",
                "base_url": "http://127.0.0.1:9",
                "api_key": "${ATELIER_TEST_KEY_UNSET}",
            }
        ],
    )
    ran = await run_cli("check", cwd=tmp_path)
    assert ran.code == 2 and "ATELIER_TEST_KEY_UNSET" in ran.err


async def test_config_from_environment_variable(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "",
        [{"name": "play", "kind": "sandbox", "duration": 0.2, "state_dir": str(tmp_path / "sb")}],
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = await run_cli("check", cwd=elsewhere, env={"ATELIER_CONFIG": str(cfg)})
    assert ran.code == 0, ran.err
    assert "play" in ran.out and "healthy" in ran.out


async def test_a_job_started_in_one_process_finishes_in_the_next(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [
            {
                "name": "sandbox",
                "kind": "sandbox",
                "duration": 3.0,
                "state_dir": str(tmp_path / "sb"),
            }
        ],
    )
    first = await start_cli("imagine", "a fox in the snow", cwd=tmp_path)
    db = tmp_path / "data" / "atelier.db"

    async def running_job() -> str:
        while True:
            await asyncio.sleep(0.1)
            if not db.exists():
                continue
            try:
                with sqlite3.connect(db) as conn:
                    row = conn.execute(
                        "SELECT id FROM jobs WHERE status IN ('submitted', 'running')"
                    ).fetchone()
            except sqlite3.OperationalError:
                continue
            if row:
                return str(row[0])

    job_id = await asyncio.wait_for(running_job(), 30)
    first.send_signal(signal.SIGKILL)  # no clean shutdown at all
    await first.wait()
    assert first.returncode == -signal.SIGKILL

    ran = await run_cli("wait", job_id, cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert len(list((tmp_path / "out").glob(f"{job_id}-[1-4].png"))) == 4
    listed = await run_cli("jobs", cwd=tmp_path)
    assert job_id in listed.out and "succeeded" in listed.out


async def test_a_failed_job_exits_1_with_the_reason(tmp_path: Path) -> None:
    ran = await run_cli("imagine", "a forbidden castle", cwd=tmp_path)
    assert ran.code == 1
    assert "forbidden" in ran.err


async def test_wait_for_an_unknown_job_is_bad_input(tmp_path: Path) -> None:
    ran = await run_cli("wait", "nosuchjob0", cwd=tmp_path)
    assert ran.code == 2 and "no job" in ran.err


def test_example_config_is_valid() -> None:
    from bot.config import load_config

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = load_config(str(example), env={"DISCORD_TOKEN": "sekrit-token-value"})
    assert [p.kind for p in config.providers] == ["sandbox"]
    assert "sekrit" not in repr(config) + str(config.model_dump())  # the token is a secret


async def test_usage_lists_jobs_per_user_and_provider(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [
            {
                "name": "sandbox",
                "kind": "sandbox",
                "duration": 0.2,
                "state_dir": str(tmp_path / "sb"),
            }
        ],
    )
    assert (await run_cli("imagine", "a small boat", cwd=tmp_path)).code == 0
    ran = await run_cli("usage", "--days", "2", cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert "(terminal)" in ran.out and "sandbox" in ran.out


async def test_config_before_or_after_the_command(tmp_path: Path) -> None:
    (tmp_path / "my.toml").write_text(
        '[[providers]]\nname = "mine"\nkind = "sandbox"\nduration = 0.1\n'
    )
    for args in (("--config", "my.toml", "check"), ("check", "--config", "my.toml")):
        ran = await run_cli(*args, cwd=tmp_path)
        assert ran.code == 0, ran.err
        assert "my.toml is valid" in ran.out and "mine" in ran.out, (args, ran.out)
