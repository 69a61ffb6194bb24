"""Tests for bot.engine.prompt: every rule, in valid and invalid forms."""

from __future__ import annotations

import pytest

from bot.engine.prompt import (
    ALL_PARAM_NAMES,
    MAX_PROMPT_CHARS,
    PARAMS,
    Kind,
    ParsedPrompt,
    PromptError,
    check_supported,
    parse_prompt,
    resolve_name,
)

URL_A = "https://cdn.example.com/a.png"
URL_B = "http://cdn.example.com/b.jpg?ex=1&is=2"
URL_C = "https://media.discordapp.net/attachments/1/2/c.webp"


def _error(prompt: str) -> PromptError:
    with pytest.raises(PromptError) as info:
        parse_prompt(prompt)
    return info.value


# --- the table itself ---------------------------------------------------------------------


def test_table_is_consistent() -> None:
    assert frozenset(PARAMS) == ALL_PARAM_NAMES
    seen: set[str] = set()
    for name, spec in PARAMS.items():
        assert spec.name == name
        assert spec.flag.startswith("--")
        assert spec.flag[2:] in spec.aliases  # render() output must parse back
        assert spec.description
        for alias in spec.aliases:
            assert alias not in seen, alias
            seen.add(alias)
        if spec.kind in (Kind.INT, Kind.FLOAT):
            assert spec.low is not None and spec.high is not None and spec.low <= spec.high
        if spec.kind is Kind.CHOICE:
            assert spec.choices


def test_canonical_names() -> None:
    expected = {
        "aspect", "chaos", "no", "quality", "seed", "stop", "stylize", "sref", "sw", "sv",
        "cref", "cw", "oref", "ow", "tile", "version", "niji", "raw", "style", "weird", "iw",
        "draft", "exp", "fast", "relax", "turbo", "zoom", "steps",
    }  # fmt: skip
    assert expected == ALL_PARAM_NAMES


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("ar", "aspect"), ("--ar", "aspect"), ("\u2014AR", "aspect"), ("v", "version"),
     ("s", "stylize"), ("c", "chaos"), ("q", "quality"), ("w", "weird"), ("foo", None),
     ("r", None)],
)  # fmt: skip
def test_resolve_name(spelling: str, canonical: str | None) -> None:
    assert resolve_name(spelling) == canonical


# --- length -------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
def test_empty_prompt(prompt: str) -> None:
    err = _error(prompt)
    assert "empty" in str(err) and str(MAX_PROMPT_CHARS) in str(err)
    assert err.param is None


def test_too_long_prompt_names_limit_and_length() -> None:
    err = _error("a" * 9000)
    assert "9000" in str(err) and "8192" in str(err)


def test_length_limit_is_inclusive_and_counts_after_strip() -> None:
    assert parse_prompt("a" * MAX_PROMPT_CHARS).text == "a" * MAX_PROMPT_CHARS
    assert parse_prompt("  " + "a" * MAX_PROMPT_CHARS + "  ").raw == "a" * MAX_PROMPT_CHARS
    assert "8193" in str(_error("a" * (MAX_PROMPT_CHARS + 1)))
    assert parse_prompt("a").text == "a"


# --- splitting: URLs, text, parameters ----------------------------------------------------


def test_plain_text() -> None:
    parsed = parse_prompt("  a red   cat,\n on a mat  ")
    assert parsed.raw == "a red   cat,\n on a mat"
    assert parsed.text == "a red cat, on a mat"
    assert parsed.image_urls == ()
    assert parsed.params == {}


def test_image_urls_at_start() -> None:
    parsed = parse_prompt(f"{URL_A} <{URL_B}> {URL_C} a cat --iw 1.5")
    assert parsed.image_urls == (URL_A, URL_B, URL_C)  # Discord's <...> wrapping is removed
    assert parsed.text == "a cat"
    assert parsed.params == {"iw": "1.5"}


def test_urls_after_text_are_text() -> None:
    parsed = parse_prompt(f"a cat like {URL_A} and {URL_B}")
    assert parsed.image_urls == ()
    assert parsed.text == f"a cat like {URL_A} and {URL_B}"


def test_two_images_without_text_are_a_prompt() -> None:
    parsed = parse_prompt(f"{URL_A} {URL_B} --ar 3:2")
    assert parsed.image_urls == (URL_A, URL_B)
    assert parsed.text == ""


@pytest.mark.parametrize("prompt", [URL_A, f"{URL_A} --ar 16:9", f"<{URL_A}>"])
def test_single_image_needs_text(prompt: str) -> None:
    assert "single image URL" in str(_error(prompt))


@pytest.mark.parametrize("prompt", ["--ar 16:9", "--tile", "\u2014v 7 --fast"])
def test_parameters_only_is_rejected(prompt: str) -> None:
    assert "no words" in str(_error(prompt))


@pytest.mark.parametrize(
    "token", ["https://", "ftp://example.com/a.png", "https:/example.com/a.png", "http://[::1"]
)
def test_non_urls_at_start_are_text(token: str) -> None:
    parsed = parse_prompt(f"{token} cat")
    assert parsed.image_urls == ()
    assert parsed.text == f"{token} cat"


@pytest.mark.parametrize(
    "text", ["a -- b", "a - b", "a --> b", "a \u2014 b", "well-known", "a--b", "1990\u20142000"]
)
def test_dashes_that_are_not_parameters(text: str) -> None:
    parsed = parse_prompt(text)
    assert parsed.text == text
    assert parsed.params == {}


def test_em_dash_starts_a_parameter() -> None:
    parsed = parse_prompt("a cat \u2014ar 16:9 \u2014chaos 20 --no dogs \u2014fast")
    assert parsed.text == "a cat"
    assert parsed.params == {"aspect": "16:9", "chaos": "20", "no": "dogs", "fast": ""}


@pytest.mark.parametrize("prompt", ["a cat ---ar 2:3", "a cat \u2014-ar 2:3", "a cat --AR 2:3"])
def test_typing_slips_in_parameter_names(prompt: str) -> None:
    assert parse_prompt(prompt).params == {"aspect": "2:3"}


def test_params_keep_prompt_order() -> None:
    parsed = parse_prompt("cat --seed 5 --ar 1:2 --tile --chaos 3")
    assert list(parsed.params) == ["seed", "aspect", "tile", "chaos"]


# --- every parameter: valid spellings and values ------------------------------------------

VALID: list[tuple[str, str, str]] = [
    # (parameter as typed, canonical name, normalised value)
    ("--ar 16:9", "aspect", "16:9"),
    ("--aspect 2:3", "aspect", "2:3"),
    ("--ar 16:09", "aspect", "16:9"),
    ("--ar 1920:1080", "aspect", "16:9"),
    ("--ar 0000016:00000009", "aspect", "16:9"),
    ("--ar 1:1", "aspect", "1:1"),
    ("--ar 14:1", "aspect", "14:1"),
    ("--ar 1:14", "aspect", "1:14"),
    ("--ar 7:4", "aspect", "7:4"),
    ("--chaos 0", "chaos", "0"),
    ("--c 100", "chaos", "100"),
    ("--c 007", "chaos", "7"),
    ("--no text", "no", "text"),
    ("--no red, blue   hats", "no", "red, blue hats"),
    ("--quality .25", "quality", "0.25"),
    ("--q 0.5", "quality", "0.5"),
    ("--q 1", "quality", "1"),
    ("--q 2.0", "quality", "2"),
    ("--q 4", "quality", "4"),
    ("--seed 0", "seed", "0"),
    ("--seed 4294967295", "seed", "4294967295"),
    ("--stop 10", "stop", "10"),
    ("--stop 100", "stop", "100"),
    ("--stylize 0", "stylize", "0"),
    ("--s 1000", "stylize", "1000"),
    ("--sref 123456", "sref", "123456"),
    ("--sref random", "sref", "random"),
    ("--sref RANDOM", "sref", "random"),
    (f"--sref {URL_A}", "sref", URL_A),
    (f"--sref <{URL_A}>::2 42::0.5 random", "sref", f"{URL_A}::2 42::0.5 random"),
    ("--sw 0", "sw", "0"),
    ("--sw 1000", "sw", "1000"),
    ("--sv 1", "sv", "1"),
    ("--sv 6", "sv", "6"),
    (f"--cref {URL_A}", "cref", URL_A),
    (f"--cref {URL_A} {URL_B}", "cref", f"{URL_A} {URL_B}"),
    ("--cw 0", "cw", "0"),
    ("--cw 100", "cw", "100"),
    (f"--oref {URL_C}", "oref", URL_C),
    ("--ow 1", "ow", "1"),
    ("--ow 1000", "ow", "1000"),
    ("--tile", "tile", ""),
    ("--v 7", "version", "7"),
    ("--version 6.1", "version", "6.1"),
    ("--v 6.0", "version", "6"),
    ("--v 5.0", "version", "5"),
    ("--v 5.2", "version", "5.2"),
    ("--v 1", "version", "1"),
    ("--niji", "niji", ""),
    ("--niji 6", "niji", "6"),
    ("--niji 5", "niji", "5"),
    ("--niji 4", "niji", "4"),
    ("--raw", "raw", ""),
    ("--style raw", "style", "raw"),
    ("--style Scenic", "style", "scenic"),
    ("--style 4a", "style", "4a"),
    ("--weird 0", "weird", "0"),
    ("--w 3000", "weird", "3000"),
    ("--iw 0", "iw", "0"),
    ("--iw 3", "iw", "3"),
    ("--iw .5", "iw", "0.5"),
    ("--iw 1.50", "iw", "1.5"),
    ("--draft", "draft", ""),
    ("--exp 0", "exp", "0"),
    ("--exp 100", "exp", "100"),
    ("--fast", "fast", ""),
    ("--relax", "relax", ""),
    ("--turbo", "turbo", ""),
    ("--zoom 1", "zoom", "1"),
    ("--zoom 1.5", "zoom", "1.5"),
    ("--zoom 2.0", "zoom", "2"),
    ("--steps 4", "steps", "4"),
    ("--steps 10", "steps", "10"),
]

# Parameters that only make sense with another one: add it so the valid case stands alone.
_COMPANIONS = {"sw": " --sref 1", "sv": " --sref 1", "cw": f" --cref {URL_A}",
               "ow": f" --oref {URL_A}"}  # fmt: skip


def _with_companion(name: str, param: str) -> str:
    prefix = f"{URL_B} " if name == "iw" else ""
    return f"{prefix}a cat {param}{_COMPANIONS.get(name, '')}"


@pytest.mark.parametrize(("param", "name", "value"), VALID)
def test_valid_parameter(param: str, name: str, value: str) -> None:
    parsed = parse_prompt(_with_companion(name, param))
    assert parsed.text == "a cat"
    assert parsed.params[name] == value
    assert next(iter(parsed.params)) == name
    # And the em-dash spelling means the same.
    assert parse_prompt(_with_companion(name, "\u2014" + param[2:])) == parsed


def test_every_parameter_has_a_valid_case() -> None:
    assert {name for _, name, _ in VALID} == ALL_PARAM_NAMES


def test_every_alias_is_accepted() -> None:
    examples = {name: param.split(" ", 1)[1:] for param, name, _ in VALID}
    for name, spec in PARAMS.items():
        value = " ".join(examples[name])
        for alias in spec.aliases:
            parsed = parse_prompt(_with_companion(name, f"--{alias} {value}".rstrip()))
            assert name in parsed.params, alias


# --- every parameter: invalid values ------------------------------------------------------

INVALID: list[tuple[str, str, list[str]]] = [
    # (parameter as typed, canonical name, fragments the message must contain)
    ("--ar", "aspect", ["--ar needs a value", "16:9"]),
    ("--ar 16x9", "aspect", ["--ar", "width:height", "16x9"]),
    ("--ar 16:9.5", "aspect", ["--ar", "whole numbers", "16:9.5"]),
    ("--ar -16:9", "aspect", ["--ar", "-16:9"]),
    ("--ar 0:1", "aspect", ["--ar", "1 or more", "0:1"]),
    ("--ar 16:0", "aspect", ["--ar", "1 or more"]),
    ("--ar 00000000:5", "aspect", ["--ar", "1 or more"]),
    ("--ar 1:15", "aspect", ["--ar", "1:14 to 14:1", "1:15"]),
    ("--ar 15:1", "aspect", ["--ar", "14:1", "15:1"]),
    ("--aspect 20000:10000", "aspect", ["--aspect", "10000", "20000:10000"]),
    ("--ar 99999999999999999999:1", "aspect", ["--ar", "up to 10000", "9999"]),
    ("--ar 16:9 in the snow", "aspect", ["--ar", "one value", "16:9 in the snow", "before"]),
    ("--chaos", "chaos", ["--chaos needs a value", "0 to 100"]),
    ("--chaos 150", "chaos", ["--chaos", "0 to 100", "150"]),
    ("--c -1", "chaos", ["--c", "0 to 100", "-1"]),
    ("--c 1.5", "chaos", ["--c", "whole number", "1.5"]),
    ("--c lots", "chaos", ["--c", "whole number", "lots"]),
    ("--no", "no", ["--no needs a value"]),
    ("--quality 3", "quality", ["--quality", "0.25, 0.5, 1, 2, 4", "3"]),
    ("--q high", "quality", ["--q", "0.25", "high"]),
    ("--seed 4294967296", "seed", ["--seed", "0 to 4294967295", "4294967296"]),
    ("--seed -5", "seed", ["--seed", "-5"]),
    ("--seed 1" + "0" * 30, "seed", ["--seed", "0 to 4294967295"]),
    ("--stop 9", "stop", ["--stop", "10 to 100", "9"]),
    ("--stop 101", "stop", ["--stop", "10 to 100", "101"]),
    ("--stylize 1001", "stylize", ["--stylize", "0 to 1000", "1001"]),
    ("--s -3", "stylize", ["--s", "0 to 1000"]),
    ("--sref", "sref", ["--sref needs a value", "style codes"]),
    ("--sref pretty", "sref", ["--sref", "style codes", "pretty"]),
    ("--sref ftp://x.com/a.png", "sref", ["--sref", "ftp://x.com/a.png"]),
    ("--sw 1001 --sref 1", "sw", ["--sw", "0 to 1000", "1001"]),
    ("--sv 0 --sref 1", "sv", ["--sv", "1 to 6", "0"]),
    ("--sv 7 --sref 1", "sv", ["--sv", "1 to 6", "7"]),
    ("--cref", "cref", ["--cref needs a value", "image URL"]),
    ("--cref 123", "cref", ["--cref", "image URL", "123"]),
    ("--cref random", "cref", ["--cref", "random"]),
    (f"--cw 101 --cref {URL_A}", "cw", ["--cw", "0 to 100", "101"]),
    ("--oref", "oref", ["--oref needs a value", "one image URL"]),
    (f"--oref {URL_A} {URL_B}", "oref", ["--oref", "one image URL", "2"]),
    ("--oref 42", "oref", ["--oref", "42"]),
    (f"--ow 0 --oref {URL_A}", "ow", ["--ow", "1 to 1000", "0"]),
    (f"--ow 1001 --oref {URL_A}", "ow", ["--ow", "1 to 1000", "1001"]),
    ("--tile 2", "tile", ["--tile takes no value", "2", "before the first parameter"]),
    ("--tile in the snow", "tile", ["--tile", "in the snow"]),
    ("--v", "version", ["--v needs a value", "6.1", "7"]),
    ("--v 8", "version", ["--v", "one of", "6.1", "8"]),
    ("--version 6.2", "version", ["--version", "6.2"]),
    ("--v seven", "version", ["--v", "seven"]),
    ("--niji 3", "niji", ["--niji", "4, 5, 6", "3"]),
    ("--niji anime girl", "niji", ["--niji", "anime girl"]),
    ("--raw please", "raw", ["--raw takes no value", "please"]),
    ("--style", "style", ["--style needs a value", "raw"]),
    ("--style fancy", "style", ["--style", "raw", "fancy"]),
    ("--weird 3001", "weird", ["--weird", "0 to 3000", "3001"]),
    ("--w -1", "weird", ["--w", "0 to 3000"]),
    ("--iw 3.5", "iw", ["--iw", "0 to 3", "3.5"]),
    ("--iw -1", "iw", ["--iw", "0 to 3", "-1"]),
    ("--iw 1e1", "iw", ["--iw", "1e1"]),
    ("--draft 1", "draft", ["--draft takes no value"]),
    ("--exp 101", "exp", ["--exp", "0 to 100", "101"]),
    ("--fast now", "fast", ["--fast takes no value", "now"]),
    ("--relax 1", "relax", ["--relax takes no value"]),
    ("--turbo x", "turbo", ["--turbo takes no value"]),
    ("--zoom 0.9", "zoom", ["--zoom", "1 to 2", "0.9"]),
    ("--zoom 2.5", "zoom", ["--zoom", "1 to 2", "2.5"]),
    ("--zoom", "zoom", ["--zoom needs a value", "1 to 2"]),
    ("--steps 3", "steps", ["--steps", "4 to 10", "3"]),
    ("--steps 11", "steps", ["--steps", "4 to 10", "11"]),
    ("--steps 5.5", "steps", ["--steps", "whole number", "5.5"]),
]


@pytest.mark.parametrize(("param", "name", "fragments"), INVALID)
def test_invalid_parameter(param: str, name: str, fragments: list[str]) -> None:
    prefix = f"{URL_B} " if name == "iw" else ""
    err = _error(f"{prefix}a cat {param}")
    assert err.param == name
    message = str(err)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert message.endswith(".")


def test_every_parameter_has_an_invalid_case() -> None:
    assert {name for _, name, _ in INVALID} == ALL_PARAM_NAMES


def test_long_values_are_shortened_in_messages() -> None:
    message = str(_error("a cat --chaos " + "9" * 500))
    assert len(message) < 200
    assert "…" in message


# --- rejection rules ----------------------------------------------------------------------


@pytest.mark.parametrize("param", ["--foo", "--foo 3", "--hd", "--ar16:9", "\u2014bar baz"])
def test_unknown_parameter(param: str) -> None:
    err = _error(f"a cat {param}")
    name = param.split()[0].lstrip("-\u2014")
    assert f"--{name.lower()} is not a parameter Atelier knows" in str(err)
    assert "--ar" in str(err) and "--stylize" in str(err)  # the list of known ones
    assert err.param is None


@pytest.mark.parametrize(
    ("param", "suggestion"),
    [("--stylise 100", "--stylize"), ("--chaoss 5", "--chaos"), ("--aspec 1:2", "--aspect")],
)
def test_unknown_parameter_suggests_close_match(param: str, suggestion: str) -> None:
    assert f"did you mean {suggestion}?" in str(_error(f"a cat {param}"))


@pytest.mark.parametrize(
    ("prompt", "param", "fragments"),
    [
        ("a --ar 1:1 --ar 2:3", "aspect", ["--ar is given twice", "keep one"]),
        ("a --ar 1:1 --aspect 2:3", "aspect", ["twice", "--ar", "--aspect"]),
        ("a --s 100 --stylize 200", "stylize", ["--stylize", "twice", "--s and --stylize"]),
        ("a --tile --tile", "tile", ["--tile is given twice"]),
        ("a --no red --no blue", "no", ["--no is given twice"]),
        ("a --niji --niji 6", "niji", ["--niji is given twice"]),
        ("a --fast \u2014fast", "fast", ["--fast is given twice"]),
    ],
)
def test_duplicates(prompt: str, param: str, fragments: list[str]) -> None:
    err = _error(prompt)
    assert err.param == param
    for fragment in fragments:
        assert fragment in str(err)


@pytest.mark.parametrize(
    ("prompt", "first", "second", "reason"),
    [
        ("a --fast --relax", "--fast", "--relax", "speed mode"),
        ("a --relax --turbo", "--relax", "--turbo", "speed mode"),
        ("a --turbo --fast", "--turbo", "--fast", "speed mode"),
        ("a --niji 6 --v 6", "--niji", "--v", "model"),
        ("a --version 7 --niji", "--version", "--niji", "model"),
        ("a --raw --style raw", "--raw", "--style", "--style raw"),
        ("a --style cute --raw", "--style", "--raw", "--style raw"),
    ],
)
def test_conflicts(prompt: str, first: str, second: str, reason: str) -> None:
    message = str(_error(prompt))
    assert f"{first} and {second} cannot be used together" in message
    assert reason in message and "keep one" in message


@pytest.mark.parametrize(
    ("prompt", "param", "needed"),
    [
        ("a --sw 100", "sw", "--sref"),
        ("a --sv 4", "sv", "--sref"),
        ("a --cw 50", "cw", "--cref"),
        ("a --ow 100", "ow", "--oref"),
    ],
)
def test_weights_need_their_reference(prompt: str, param: str, needed: str) -> None:
    err = _error(prompt)
    assert err.param == param
    assert f"--{param}" in str(err) and needed in str(err)


def test_image_weight_needs_an_image() -> None:
    err = _error("a cat --iw 2")
    assert err.param == "iw" and "image URL" in str(err)


@pytest.mark.parametrize(
    ("param", "canonical", "fragment"),
    [
        ("--repeat 4", "repeat", "--repeat (repeat) is not supported"),
        ("--r 4", "repeat", "--r (repeat) is not supported"),
        ("--profile abc", "profile", "personalization profiles are not supported by the providers"),
        ("--p", "profile", "--p: personalization profiles are not supported"),
        ("--p abc123", "profile", "personalization profiles"),
        ("--personalize", "profile", "personalization profiles"),
        ("--public", "public", "--public is not supported"),
        ("--stealth", "stealth", "--stealth is not supported"),
        ("--video", "video", "video parameters are not supported"),
        ("--motion high", "motion", "--motion is a video parameter"),
        ("--loop", "loop", "video parameters are not supported"),
        (f"--end {URL_A}", "end", "video parameters are not supported"),
        ("--bs 2", "batchsize", "--bs is a video parameter"),
        ("--batchsize 4", "batchsize", "video parameters are not supported"),
        ("\u2014r 2", "repeat", "--r (repeat)"),
    ],
)
def test_refused_midjourney_parameters(param: str, canonical: str, fragment: str) -> None:
    err = _error(f"a cat {param}")
    assert err.param == canonical
    assert fragment in str(err)


@pytest.mark.parametrize(
    "prompt",
    [
        "a {red, blue} bird",
        "a {red,blue} bird --ar 1:1",
        "a bird --no {cats, dogs}",
        "a bird --ar {1:1, 16:9}",
        "a {big, small} {red, blue} bird",
        "{a,b}",
    ],
)
def test_permutations_are_rejected(prompt: str) -> None:
    message = str(_error(prompt))
    assert "Permutation prompts" in message and "not supported" in message
    assert "{" in message


@pytest.mark.parametrize("prompt", ["a {red} bird", "a {red\\, blue} bird", "a } , { bird"])
def test_braces_without_permutation_are_text(prompt: str) -> None:
    assert parse_prompt(prompt).text == prompt


# --- ParsedPrompt ------------------------------------------------------------------------


def test_param_accessor() -> None:
    parsed = parse_prompt("a cat --ar 16:9 --tile")
    assert parsed.param("aspect") == "16:9"
    assert parsed.param("ar") == "16:9"
    assert parsed.param("--ar") == "16:9"
    assert parsed.param("tile") == ""
    assert parsed.param("seed") is None
    assert parsed.param("seed", "0") == "0"
    assert parsed.param("nonsense", "x") == "x"


@pytest.mark.parametrize(
    ("prompt", "ratio"),
    [("a", (1, 1)), ("a --ar 16:9", (16, 9)), ("a --aspect 1080:1920", (9, 16)),
     ("a --ar 4:4", (1, 1))],
)  # fmt: skip
def test_aspect_ratio(prompt: str, ratio: tuple[int, int]) -> None:
    assert parse_prompt(prompt).aspect_ratio == ratio


@pytest.mark.parametrize(
    ("prompt", "mode"),
    [("a", None), ("a --fast", "fast"), ("a --relax", "relax"), ("a --turbo --ar 1:2", "turbo")],
)
def test_mode(prompt: str, mode: str | None) -> None:
    assert parse_prompt(prompt).mode == mode


ROUND_TRIP = [
    "a cat",
    "a   cat\n\ton a mat",
    f"{URL_A} {URL_B}",
    f"<{URL_A}> a cat --iw 0.50",
    "a cat \u2014ar 32:18 \u2014c 5 --no red,   blue hats --q .5 --v 6.0 --fast",
    f"a cat --sref <{URL_A}>::2 0042 RANDOM --sw 50 --sv 4",
    f"a cat --cref {URL_A} {URL_B} --cw 0 --oref {URL_C} --ow 400",
    "a cat --niji --style Cute --s 250 --w 10 --tile --draft --exp 5 --turbo --seed 0",
    "a cat --zoom 1.50 --steps 8 --stop 50 --raw --quality 4 --relax",
    "a {red} cat -- with dashes -> here https://not.an/image --no a - b-like --> text",
]


@pytest.mark.parametrize("prompt", ROUND_TRIP)
def test_render_round_trip(prompt: str) -> None:
    parsed = parse_prompt(prompt)
    rendered = parsed.render()
    again = parse_prompt(rendered)
    assert again == parsed
    assert again.render() == rendered  # canonical form is a fixed point
    assert again.raw == rendered


def test_render_canonical_spellings() -> None:
    parsed = parse_prompt(
        f"{URL_A} a cat \u2014aspect 2:1 --c 5 --s 50 --version 7 --q 2 --w 9 --iw 2"
    )
    assert parsed.render() == (
        f"{URL_A} a cat --ar 2:1 --chaos 5 --stylize 50 --v 7 --quality 2 --weird 9 --iw 2"
    )


def test_render_without_and_extra() -> None:
    parsed = parse_prompt("a cat --ar 16:9 --seed 5 --fast --tile")
    assert parsed.render(without=["seed", "--tile"]) == "a cat --ar 16:9 --fast"
    # An extra replaces in place, is normalised, and new ones go last.
    assert parsed.render(extra={"ar": "32:18", "zoom": "1.50"}) == (
        "a cat --ar 16:9 --seed 5 --fast --tile --zoom 1.5"
    )
    # Setting a speed mode replaces the other one instead of producing a conflict.
    assert parsed.render(extra={"relax": ""}) == "a cat --ar 16:9 --seed 5 --tile --relax"
    assert parsed.mode == "fast"  # render never changes the parsed prompt
    niji = parse_prompt("a cat --v 6").render(extra={"niji": "6"})
    assert niji == "a cat --niji 6"
    assert parse_prompt(niji).params == {"niji": "6"}


def test_render_extra_is_validated() -> None:
    parsed = parse_prompt("a cat")
    with pytest.raises(PromptError) as info:
        parsed.render(extra={"zoom": "3"})
    assert info.value.param == "zoom" and "1 to 2" in str(info.value)
    with pytest.raises(KeyError):
        parsed.render(extra={"bogus": "1"})
    with pytest.raises(KeyError):
        parsed.render(without=["bogus"])


def test_equality_ignores_raw_and_hash_works() -> None:
    first = parse_prompt("a  cat --c 5")
    second = parse_prompt("a cat --chaos 5")
    assert first == second
    assert first.raw != second.raw
    assert hash(first) == hash(second)
    assert first != parse_prompt("a cat --chaos 6")


def test_parsed_prompt_is_frozen() -> None:
    parsed = parse_prompt("a cat")
    with pytest.raises(AttributeError):
        parsed.text = "a dog"  # type: ignore[misc]
    assert isinstance(parsed, ParsedPrompt)


# --- check_supported ----------------------------------------------------------------------

FLUX = frozenset({"aspect", "seed", "steps"})


def test_supported_parameters_pass() -> None:
    check_supported(parse_prompt("a cat --ar 16:9 --seed 3 --steps 6"), FLUX, "flux")
    check_supported(parse_prompt("a cat"), frozenset(), "bare")
    check_supported(parse_prompt("a cat --chaos 5 --fast"), ALL_PARAM_NAMES, "mj")


def test_unsupported_parameter_named_with_accepted_list() -> None:
    parsed = parse_prompt("a cat --ar 16:9 --chaos 50 --tile")
    with pytest.raises(PromptError) as info:
        check_supported(parsed, FLUX, "flux")
    err = info.value
    assert err.param == "chaos"  # the first unsupported one, in prompt order
    message = str(err)
    assert "flux" in message and "--chaos" in message
    assert "--ar, --seed, --steps" in message
    assert "--tile" not in message


def test_unsupported_when_provider_accepts_most() -> None:
    accepted = ALL_PARAM_NAMES - {"steps", "zoom"}
    with pytest.raises(PromptError) as info:
        check_supported(parse_prompt("a cat --ar 1:2 --steps 5"), accepted, "mj")
    message = str(info.value)
    assert info.value.param == "steps"
    assert "every parameter except --zoom, --steps" in message


def test_unsupported_when_provider_accepts_none() -> None:
    with pytest.raises(PromptError) as info:
        check_supported(parse_prompt("a cat --tile"), frozenset(), "bare")
    assert "takes no parameters" in str(info.value) and "--tile" in str(info.value)


def test_check_supported_uses_canonical_spelling() -> None:
    with pytest.raises(PromptError) as info:
        check_supported(parse_prompt("a cat --s 5"), FLUX, "flux")
    assert "--stylize" in str(info.value)


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["--", "\u2014", "- - -", "::", "<>", "<https://>", "{", "}", "{,}x", "-- --", "a\x00b"],
)
def test_odd_input_never_crashes(prompt: str) -> None:
    try:
        parsed = parse_prompt(prompt)
    except PromptError as err:
        assert str(err)
    else:
        assert parse_prompt(parsed.render()) == parsed


def test_big_prompt_is_fast() -> None:
    # Not a timing test: just make sure a maximal prompt with many tokens parses.
    words = ("word " * 1600).strip()
    params = " --ar 16:9 --chaos 5 --no " + "x " * 50
    parsed = parse_prompt(words + params)
    assert parsed.params["chaos"] == "5"
    assert len(parsed.text.split()) == 1600
