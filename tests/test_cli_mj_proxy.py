"""`python -m bot imagine` and `check` end to end against the fake midjourney-proxy."""

from __future__ import annotations

import socket
from pathlib import Path

from PIL import Image

from tests.cli_helpers import run_cli, write_config
from tests.fakes.mj_proxy_fake import FakeMjProxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_imagine_completes_and_writes_images(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay", key="s3cret-key") as fake:
        settings = fake.provider_config(api_key="${MJ_KEY}")
        write_config(tmp_path, [settings])
        ran = await run_cli(
            "imagine",
            "a red fox in snow --ar 1:1 --chaos 10",
            cwd=tmp_path,
            env={"MJ_KEY": "s3cret-key"},
        )
        assert ran.code == 0, ran.err
        assert fake.violations == []
        sent = fake.bodies("/submit/imagine")
        assert sent and sent[0]["prompt"].startswith("a red fox in snow")
    images = sorted((tmp_path / "out").glob("*-[1-4].png"))
    assert len(images) == 4 and list((tmp_path / "out").glob("*-grid.png"))
    with Image.open(images[0]) as image:
        assert image.size[0] > 0
    assert "s3cret-key" not in ran.out + ran.err


async def test_banned_prompt_exits_1_with_the_providers_reason(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.banned_words = {"gore"}
        write_config(tmp_path, [fake.provider_config()])
        ran = await run_cli("imagine", "some gore here", cwd=tmp_path)
    assert ran.code == 1
    assert "gore" in ran.err


async def test_failed_task_exits_1_with_the_fail_reason(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="novicezk") as fake:
        fake.fail_with = "[Invalid parameter] Invalid value for --stop"
        write_config(tmp_path, [fake.provider_config()])
        ran = await run_cli("imagine", "a cat", cwd=tmp_path)
    assert ran.code == 1
    assert "Invalid parameter" in ran.err


async def test_unsupported_flag_exits_2_before_any_request(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        write_config(tmp_path, [fake.provider_config()])
        ran = await run_cli("imagine", "a cat --steps 6", cwd=tmp_path)
        assert fake.count("/submit/imagine") == 0
    assert ran.code == 2
    assert "--steps" in ran.err


async def test_check_tells_bad_key_unreachable_and_healthy_apart(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay", key="right") as fake:
        write_config(
            tmp_path,
            [
                fake.provider_config("good"),
                fake.provider_config("wrongkey", api_key="wrong"),
                fake.provider_config("gone", base_url=f"http://127.0.0.1:{free_port()}"),
            ],
        )
        ran = await run_cli("check", cwd=tmp_path)
    assert ran.code == 1
    lines = {line.split()[0]: line for line in ran.out.splitlines() if line.strip()}
    assert "healthy" in lines["good"]
    assert "bad_key" in lines["wrongkey"]
    assert "unreachable" in lines["gone"]
    assert "wrong" not in lines["wrongkey"].split("bad_key", 1)[1]
