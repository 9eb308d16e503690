"""The control-character rule every way text comes in: the function, the grammar, the form."""

from __future__ import annotations

import pytest

from handlers.errors import InvalidInput
from handlers.forms import read_activation_form
from handlers.grammar import CommandError, parse_command
from handlers.user_text import control_character, user_text


@pytest.mark.parametrize(
    "text, found",
    [
        ("plain text", None),
        ("tab\tand\nnew line", None),
        ("windows\r\nline end", None),
        ("nul\x00", "U+0000"),
        ("bell\x07", "U+0007"),
        ("lone\rreturn", "U+000D"),
        ("escape\x1b[2J", "U+001B"),
        ("delete\x7f", "U+007F"),
        ("c1\x9b31m", "U+009B"),
        ("emoji 🔐 and accents é", None),
    ],
)
def test_control_character(text, found):
    assert control_character(text) == found


def test_user_text_keeps_meaning_and_refuses_the_rest():
    assert user_text("  on call\r\nINC-1  ", what="justification") == "on call\nINC-1"
    assert user_text("   ", what="justification") is None
    assert user_text(None, what="justification") is None
    with pytest.raises(InvalidInput) as caught:
        user_text("on\x00call", what="justification")
    assert caught.value.message == (
        "The justification contains a control character (U+0000); remove it and try again."
    )
    with pytest.raises(InvalidInput):
        user_text(["a list"], what="justification")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "activate global-admin 1h on\x00call",
        "deny R-7K2Q no\x00",
        "approve R-7K2Q \x1b[2J",
        "assign bob@contoso.com global-admin eligible why\x00",
        "activate ticket:INC\x00 admin",
        "\x00",
    ],
)
def test_the_grammar_refuses_control_characters_anywhere(text):
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    assert caught.value.reason.startswith("The command contains a control character (U+00")


def test_the_grammar_reads_windows_line_ends_as_plain_ones():
    cmd = parse_command("deny R-7K2Q not now\r\nafter the freeze")
    assert cmd.justification == "not now\nafter the freeze"  # type: ignore[attr-defined]


def test_the_form_puts_the_refusal_under_its_field():
    errors, ask = read_activation_form(
        role="quick\x00", duration="1h\x01", justification="ok", ticket="INC\x1b"
    )
    assert ask is None
    assert errors == {
        "role": "The role contains a control character (U+0000); remove it and try again.",
        "duration": "The duration contains a control character (U+0001); remove it and try again.",
        "ticket": "The ticket contains a control character (U+001B); remove it and try again.",
    }
