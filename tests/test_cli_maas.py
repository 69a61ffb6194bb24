"""`python -m bot imagine` and `check` end to end against the MaaS-MJ and Flux fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import run_cli, write_config
from tests.fakes.maas_fake import FakeMaasFlux, FakeMaasMj
from tests.test_cli_mj_proxy import free_port

KINDS = {"maas-mj": FakeMaasMj, "maas-flux": FakeMaasFlux}


def settings(fake: Any, kind: str, name: str = "p", **over: Any) -> dict[str, Any]:
    values = {
        "name": name,
        "kind": kind,
        "base_url": fake.base_url,
        "endpoint": fake.endpoint,
        "api_key": fake.key,
        "poll_interval": 0.05,
        "request_timeout": 5,
    }
    values.update(over)
    return values


@pytest.mark.parametrize("kind", KINDS)
async def test_imagine_completes_and_writes_four_images(tmp_path: Path, kind: str) -> None:
    async with KINDS[kind](key="the-key", endpoint="ep123") as fake:
        write_config(tmp_path, [settings(fake, kind)])
        ran = await run_cli("imagine", "a lighthouse at dusk --ar 3:2", cwd=tmp_path)
        assert ran.code == 0, ran.err
        assert fake.violations == []
    out = tmp_path / "out"
    assert len(list(out.glob("*-[1-4].png"))) == 4
    assert len(list(out.glob("*-grid.png"))) == 1  # composed from the four
    assert "the-key" not in ran.out + ran.err


@pytest.mark.parametrize("kind", KINDS)
async def test_banned_prompt_exits_1_with_the_reason(tmp_path: Path, kind: str) -> None:
    async with KINDS[kind]() as fake:
        write_config(tmp_path, [settings(fake, kind)])
        ran = await run_cli("imagine", "a forbidden thing", cwd=tmp_path)
    assert ran.code == 1, ran.err
    assert "failed" in ran.err


async def test_maas_mj_failure_comment_reaches_the_user(tmp_path: Path) -> None:
    async with FakeMaasMj() as fake:
        fake.fail_comment = "CreditNotEnough"
        write_config(tmp_path, [settings(fake, "maas-mj")])
        ran = await run_cli("imagine", "a cat", cwd=tmp_path)
    assert ran.code == 1
    assert "credit" in ran.err.lower()


@pytest.mark.parametrize(
    ("kind", "prompt", "named"),
    [
        ("maas-mj", "a cat --steps 6", "--steps"),
        ("maas-mj", "a cat --repeat 2", "--repeat"),
        ("maas-flux", "a cat --chaos 20", "--chaos"),
        ("maas-flux", "a cat --ar 5:4", "16:9"),  # a value Flux cannot draw: names the seven
    ],
)
async def test_prompt_the_provider_cannot_take_exits_2(
    tmp_path: Path, kind: str, prompt: str, named: str
) -> None:
    async with KINDS[kind]() as fake:
        write_config(tmp_path, [settings(fake, kind)])
        ran = await run_cli("imagine", prompt, cwd=tmp_path)
        submitted = [r for r in fake.requests if r.method == "POST"]
    assert ran.code == 2, ran.err
    assert named in ran.err
    assert submitted == []


@pytest.mark.parametrize("kind", KINDS)
async def test_check_tells_bad_key_unreachable_and_healthy_apart(tmp_path: Path, kind: str) -> None:
    async with KINDS[kind](key="right") as fake:
        write_config(
            tmp_path,
            [
                settings(fake, kind, "good"),
                settings(fake, kind, "wrongkey", api_key="wrong"),
                settings(fake, kind, "gone", base_url=f"http://127.0.0.1:{free_port()}/v1/ai"),
            ],
        )
        ran = await run_cli("check", cwd=tmp_path)
    assert ran.code == 1
    lines = {line.split()[0]: line for line in ran.out.splitlines() if line.strip()}
    assert "healthy" in lines["good"], ran.out
    assert "bad_key" in lines["wrongkey"], ran.out
    assert "unreachable" in lines["gone"], ran.out
