"""The catalogues: complete, in step with the code, and well-formed for Discord."""

from __future__ import annotations

import fnmatch
import string
import tomllib
import unicodedata
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot import i18n
from bot.i18n import Text, render, tr
from bot.ui import catalogue_tool

LOCALE_DIR = Path(__file__).resolve().parents[1] / "bot" / "locale"
Key = tuple[str, str | None]


def read(path: Path) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle)


def keys(catalogue: Catalog) -> set[Key]:
    return {(str(m.id), m.context) for m in catalogue if m.id}


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


@pytest.fixture(scope="module")
def template() -> Catalog:
    return catalogue_tool.template()


def test_the_committed_template_holds_every_message_of_the_code(template: Catalog) -> None:
    on_disk = keys(read(LOCALE_DIR / "atelier.pot"))
    wanted = keys(template)
    assert wanted - on_disk == set(), "run: python -m bot.ui.catalogue_tool"
    assert on_disk - wanted == set(), "run: python -m bot.ui.catalogue_tool"
    # The sweep is real: refusals, channel texts and command strings are all in it.
    assert ("There is no job {job_id}.", None) in wanted
    assert ("imagine", i18n.NAME_CONTEXT) in wanted
    assert ("Create images from a prompt", None) in wanted


@pytest.mark.parametrize("folder", sorted(i18n.CATALOGUES.values()))
def test_every_message_is_translated_with_the_same_placeholders(
    template: Catalog, folder: str
) -> None:
    catalogue = read(LOCALE_DIR / folder / "LC_MESSAGES" / "atelier.po")
    untranslated, mismatched = [], []
    for message in template:
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        if found is None or not found.string or found.fuzzy:
            untranslated.append(message.id)
        elif fields(str(message.id)) != fields(str(found.string)):
            mismatched.append((message.id, found.string))
    assert untranslated == []
    assert mismatched == []


def discord_name_ok(name: str) -> bool:
    """Discord's rule for command and option names: ^[-_\\p{L}\\p{N}...]{1,32}$, and
    lowercase wherever a letter has a lowercase form."""
    letters_or_numbers = all(ch in "-_" or unicodedata.category(ch)[0] in ("L", "N") for ch in name)
    return 1 <= len(name) <= 32 and letters_or_numbers and name == name.lower()


def test_translated_names_follow_discords_name_rules() -> None:
    catalogue = read(LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "atelier.po")
    names = [m for m in catalogue if m.id and m.context == i18n.NAME_CONTEXT]
    assert len(names) > 30
    bad = [(m.id, m.string) for m in names if not discord_name_ok(str(m.string))]
    assert bad == []
    assert not discord_name_ok("Imagine") and not discord_name_ok("two words")


def test_text_is_english_as_a_str_and_chinese_when_rendered() -> None:
    refusal = Text("There is no job {job_id}.", job_id="ab12")
    assert refusal == "There is no job ab12."
    assert str(ValueError(refusal)) == "There is no job ab12."
    assert refusal.render("zh-CN") == "没有任务 ab12。"
    assert refusal.render("en-US") == refusal.render("fr") == "There is no job ab12."
    assert refusal.render(None) == "There is no job ab12."
    assert render("plain words", "zh-CN") == "plain words"


def test_a_text_argument_is_rendered_in_the_same_language() -> None:
    hint = Text("a whole number from {low} to {high}", low=0, high=100)
    message = Text("{flag} needs a value: {hint}.", flag="--chaos", hint=hint)
    assert message == "--chaos needs a value: a whole number from 0 to 100."
    assert message.render("zh-CN") == "--chaos 需要一个值：0 到 100 之间的整数。"


def test_a_broken_translation_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i18n, "translate", lambda *_a, **_k: "坏的 {nope}")
    assert tr("zh-CN", "There is no job {job_id}.", job_id="x") == "There is no job x."


def test_the_catalogues_are_installed_as_package_data() -> None:
    """`pip install .` (not only -e) must ship every catalogue file with the package."""
    root = LOCALE_DIR.parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["bot"]
    files = [p.relative_to(root / "bot").as_posix() for p in LOCALE_DIR.rglob("*.po*")]
    assert {"locale/atelier.pot", "locale/zh_CN/LC_MESSAGES/atelier.po"} <= set(files)
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
