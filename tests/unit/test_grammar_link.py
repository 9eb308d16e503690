"""`link USER slack:U…|teams:…`: an admin binding a chat account, and the account syntax the
CLI shares (`pim-bot people link EMAIL ACCOUNT`)."""

from __future__ import annotations

import pytest

from handlers import commands as c
from handlers.grammar import USAGE, CommandError, help_text, parse_account, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "link dave@contoso.com slack:U0DAVE2",
            c.Link(c.UserRef("email", "dave@contoso.com"), c.ChatAccount("slack", "U0DAVE2")),
        ),
        (
            "/pim link <@U0DAVE|dave> <@w0new>",
            c.Link(c.UserRef("slack", "U0DAVE"), c.ChatAccount("slack", "W0NEW")),
        ),
        (
            "LINK <mailto:a@b.c|a@b.c> Teams:6f1c2a3b-0000-4c4c-8d8d-123456789abc",
            c.Link(
                c.UserRef("email", "a@b.c"),
                c.ChatAccount("teams", "6f1c2a3b-0000-4c4c-8d8d-123456789abc"),
            ),
        ),
    ],
)
def test_link_parses(text, expected):
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("link", "link needs a user"),
        ("link a@b.c", "link needs the account, e.g. slack:U0123ABCD or teams:<object id>"),
        (
            "link a@b.c slack:u0lower",
            "'slack:u0lower' is not a Slack user id (they look like U0123ABCD)",
        ),
        ("link a@b.c slack:", "'slack:' is not a Slack user id (they look like U0123ABCD)"),
        (
            "link a@b.c teams:has/slash",
            "'teams:has/slash' is not a Teams user id (their Entra object id)",
        ),
        (
            "link a@b.c discord:123",
            "'discord:123' is not an account; write slack:U0123ABCD or teams:<Entra object id>",
        ),
        ("link a@b.c slack:U0X extra", "unexpected 'extra'"),
    ],
)
def test_bad_link_gets_one_line_and_the_usage(text, reason):
    with pytest.raises(CommandError) as err:
        parse_command(text)
    assert err.value.reason.startswith(reason) and err.value.usage == USAGE["link"]
    assert "\n" not in str(err.value)


def test_link_is_in_help_and_the_account_parser_is_shared():
    assert "link USER slack:U…|teams:… — say which Slack or Teams account" in help_text()
    assert parse_account(" slack:U0ABC ") == c.ChatAccount("slack", "U0ABC")
