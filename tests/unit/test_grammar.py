import pickle
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.commands import (
    Activate,
    Approvals,
    Approve,
    Assign,
    Audit,
    Cancel,
    Command,
    Deactivate,
    Deny,
    Digest,
    Extend,
    ExtendAssignment,
    Grants,
    Help,
    Link,
    Remove,
    Renew,
    Requests,
    Review,
    Reviews,
    Roles,
    Ticket,
    UserRef,
)
from handlers.grammar import USAGE, CommandError, help_text, parse_command

HOUR = timedelta(hours=1)
BOB = UserRef("email", "bob@contoso.com")
NOT_A_DURATION = "is not a duration; use e.g. 90m, 2h, 1h30m, 1d or PT2H"


def refusal(text: str) -> str:
    with pytest.raises(CommandError) as caught:
        parse_command(text)
    return str(caught.value)


# --- what people type, and what the engine receives -------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Help(None)),
        ("   ", Help(None)),
        ("/pim", Help(None)),
        ("/PIM  ", Help(None)),
        ("help", Help(None)),
        ("HELP Activate", Help("activate")),
        ("/pim help assign", Help("assign")),
        ("roles", Roles()),
        ("  Roles  ", Roles()),
        ("/pim roles", Roles()),
        ("requests", Requests()),
        ("approvals", Approvals()),
        ("digest", Digest()),
        ("cancel R-7K2Q", Cancel("R-7K2Q")),
        ("cancel r-7k2q", Cancel("R-7K2Q")),
        ("approve R-7K2Q", Approve("R-7K2Q", None)),
        ("approve r-abcd1234 looks right, go", Approve("R-ABCD1234", "looks right, go")),
        ("deny R-7K2Q not during the freeze", Deny("R-7K2Q", "not during the freeze")),
        ("deactivate admin", Deactivate("admin")),
        ('deactivate "Global Administrator"', Deactivate("Global Administrator")),
        ("deactivate 'Global Administrator'", Deactivate("Global Administrator")),
        ("deactivate \u201cGlobal Administrator\u201d", Deactivate("Global Administrator")),
        ("deactivate O'Brien-role", Deactivate("O'Brien-role")),
    ],
)
def test_parses_simple_commands(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("activate", Activate(None, None, None, None)),
        ("/pim activate", Activate(None, None, None, None)),
        ("activate admin", Activate("admin", None, None, None)),
        ("ACTIVATE Admin 2h", Activate("Admin", 2 * HOUR, None, None)),
        (
            "activate admin 90m fixing prod",
            Activate("admin", 90 * timedelta(minutes=1), None, "fixing prod"),
        ),
        ("activate admin PT2H", Activate("admin", 2 * HOUR, None, None)),
        ("activate admin 1h30m", Activate("admin", timedelta(minutes=90), None, None)),
        ("activate admin fixing prod", Activate("admin", None, None, "fixing prod")),
        ("activate admin Please check", Activate("admin", None, None, "Please check")),
        (
            'activate "Global Administrator" 2h ticket:jira:OPS-12 rotate keys',
            Activate("Global Administrator", 2 * HOUR, Ticket("jira", "OPS-12"), "rotate keys"),
        ),
        ("activate admin ticket:INC123", Activate("admin", None, Ticket(None, "INC123"), None)),
        (
            "activate admin TICKET:JIRA:OPS-12",
            Activate("admin", None, Ticket("jira", "OPS-12"), None),
        ),
        ("activate admin ticket:INC1 2h", Activate("admin", 2 * HOUR, Ticket(None, "INC1"), None)),
        (
            "activate admin 2h ticket:INC1 ticket:INC2 too",
            Activate("admin", 2 * HOUR, Ticket(None, "INC1"), "ticket:INC2 too"),
        ),
        # Once the duration is read, a later number belongs to the justification.
        ("activate admin 2h 3 servers down", Activate("admin", 2 * HOUR, None, "3 servers down")),
    ],
)
def test_parses_activate(text: str, command: Command) -> None:
    assert parse_command(text) == command


def test_justification_is_the_raw_remainder() -> None:
    command = parse_command("activate admin 2h   I'm fixing  \"prod\" \u2014 'again'  ")
    assert command == Activate("admin", 2 * HOUR, None, "I'm fixing  \"prod\" \u2014 'again'")


def test_justification_keeps_its_own_line_breaks() -> None:
    command = parse_command("approve R-7K2Q first line\nsecond line")
    assert command == Approve("R-7K2Q", "first line\nsecond line")


def test_justification_of_exactly_500_characters_is_fine() -> None:
    command = parse_command("activate admin " + "x" * 500)
    assert isinstance(command, Activate) and command.justification == "x" * 500


@pytest.mark.parametrize(
    ("text", "command"),
    [
        (
            "assign bob@contoso.com admin eligible",
            Assign(BOB, "admin", "eligible", None, None, None),
        ),
        ("assign Bob@Contoso.COM admin ACTIVE", Assign(BOB, "admin", "active", None, None, None)),
        (
            "assign <mailto:bob@contoso.com|bob@contoso.com> admin eligible",
            Assign(BOB, "admin", "eligible", None, None, None),
        ),
        (
            'assign <@U123> "Global Administrator" active 8h on call this week',
            Assign(
                UserRef("slack", "U123"),
                "Global Administrator",
                "active",
                8 * HOUR,
                None,
                "on call this week",
            ),
        ),
        (
            "assign <@U123|bob> admin eligible",
            Assign(UserRef("slack", "U123"), "admin", "eligible", None, None, None),
        ),
        (
            "assign <at>Bob Smith</at> admin eligible until 2027-06-30",
            Assign(
                UserRef("teams", "Bob Smith"),
                "admin",
                "eligible",
                None,
                datetime(2027, 6, 30, tzinfo=UTC),
                None,
            ),
        ),
        (
            "assign bob@contoso.com admin active until 2027-06-30T12:00 audit season",
            Assign(
                BOB, "admin", "active", None, datetime(2027, 6, 30, 12, tzinfo=UTC), "audit season"
            ),
        ),
        (
            "assign bob@contoso.com admin active until 2027-06-30T12:00:00Z",
            Assign(BOB, "admin", "active", None, datetime(2027, 6, 30, 12, tzinfo=UTC), None),
        ),
        (
            "assign bob@contoso.com admin active UNTIL 2027-06-30t12:00+02:00",
            Assign(BOB, "admin", "active", None, datetime(2027, 6, 30, 10, tzinfo=UTC), None),
        ),
    ],
)
def test_parses_assign(text: str, command: Command) -> None:
    assert parse_command(text) == command


def test_until_is_always_utc() -> None:
    command = parse_command("assign bob@contoso.com admin active until 2027-06-30T12:00-05:00")
    assert isinstance(command, Assign) and command.until is not None
    assert command.until.tzinfo is UTC
    assert command.until == datetime(2027, 6, 30, 17, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("remove bob@contoso.com admin", Remove(BOB, "admin", None)),
        ("remove bob@contoso.com admin eligible", Remove(BOB, "admin", "eligible")),
        (
            'remove <@W9ZZ> "Global Administrator" Active',
            Remove(UserRef("slack", "W9ZZ"), "Global Administrator", "active"),
        ),
        ("audit", Audit(None, None)),
        ("audit bob@contoso.com", Audit("bob@contoso.com", None)),
        ('audit "Global Administrator" since 7d', Audit("Global Administrator", timedelta(days=7))),
        ("audit <at>Bob Smith</at>", Audit("<at>Bob Smith</at>", None)),
        ("audit SINCE 12h", Audit(None, 12 * HOUR)),
        ('audit "since"', Audit("since", None)),
    ],
)
def test_parses_remove_and_audit(text: str, command: Command) -> None:
    assert parse_command(text) == command


# --- what people read when a command is refused -------------------------------------------------

ACTIVATE = "Usage: activate ROLE [DURATION] [ticket:REF] [JUSTIFICATION…]"
ASSIGN = "Usage: assign USER ROLE eligible|active [DURATION|until DATE] [JUSTIFICATION…]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "xyz",
            "unknown command 'xyz'. Usage: one of help, roles, activate, requests, cancel, "
            "approvals, approve, deny, deactivate, assign, remove, audit, digest, link, extend, "
            "renew, extend-assignment, reviews, review, grants",
        ),
        ("/pimroles", "unknown command '/pimroles'. Usage: one of " + ", ".join(USAGE)),
        ("roles mine", "roles takes nothing after it (got 'mine'). Usage: roles"),
        ("requests all", "requests takes nothing after it (got 'all'). Usage: requests"),
        ("approvals x", "approvals takes nothing after it (got 'x'). Usage: approvals"),
        ("digest now", "digest takes nothing after it (got 'now'). Usage: digest"),
        ("help activate now", "unexpected 'now'. Usage: help [TOPIC]"),
        # activate
        ("activate admin 2x", f"'2x' {NOT_A_DURATION}. {ACTIVATE}"),
        ("activate admin 2 servers down", f"'2' {NOT_A_DURATION}. {ACTIVATE}"),
        ("activate admin -2h", f"duration must be positive. {ACTIVATE}"),
        ("activate admin 0m", f"duration must be positive. {ACTIVATE}"),
        ("activate admin --for 2h", f"'--for' {NOT_A_DURATION}. {ACTIVATE}"),
        ("activate admin 3651d", f"duration is too long (at most 3650 days). {ACTIVATE}"),
        (
            "activate admin P1M",
            f"years and months have no fixed length; use days instead, e.g. P30D or 30d. {ACTIVATE}",
        ),
        (
            "activate admin ticket:",
            f"ticket needs a reference, e.g. ticket:INC123 or ticket:jira:OPS-12. {ACTIVATE}",
        ),
        (
            "activate admin 2h ticket:jira:",
            f"ticket needs a reference, e.g. ticket:INC123 or ticket:jira:OPS-12. {ACTIVATE}",
        ),
        (
            "activate admin ticket::12",
            f"ticket needs a reference, e.g. ticket:INC123 or ticket:jira:OPS-12. {ACTIVATE}",
        ),
        (
            "activate admin ticket:" + "9" * 65,
            f"the ticket reference is too long (at most 64 characters). {ACTIVATE}",
        ),
        (
            "activate admin " + "x" * 612,
            f"justification is too long (612 characters; at most 500). {ACTIVATE}",
        ),
        (
            'activate "Global Administrator',
            f"the quote before 'Global Administrator' is never closed. {ACTIVATE}",
        ),
        (
            'activate "Global Administrator"2h',
            f"put a space after '\"Global Administrator\"'. {ACTIVATE}",
        ),
        ('activate ""', f"the role name is empty. {ACTIVATE}"),
        (
            "activate " + "r" * 257,
            f"the role name is too long (257 characters; at most 256). {ACTIVATE}",
        ),
        # request ids
        ("approve", "approve needs a request id. Usage: approve REQUEST_ID [JUSTIFICATION…]"),
        (
            "approve 7K2Q",
            "'7K2Q' is not a request id (they look like R-7K2Q). Usage: approve REQUEST_ID [JUSTIFICATION…]",
        ),
        (
            "cancel R-7K2",
            "'R-7K2' is not a request id (they look like R-7K2Q). Usage: cancel REQUEST_ID",
        ),
        (
            "cancel R-7K2Q1234X",
            "'R-7K2Q1234X' is not a request id (they look like R-7K2Q). Usage: cancel REQUEST_ID",
        ),
        ("cancel", "cancel needs a request id. Usage: cancel REQUEST_ID"),
        ("cancel R-7K2Q now", "unexpected 'now'. Usage: cancel REQUEST_ID"),
        (
            "deny R-7K2Q",
            "deny needs a reason, so the requester knows what to change. Usage: deny REQUEST_ID JUSTIFICATION…",
        ),
        (
            "deny R-7K2Q " + "n" * 501,
            "justification is too long (501 characters; at most 500). Usage: deny REQUEST_ID JUSTIFICATION…",
        ),
        # deactivate
        ("deactivate", "deactivate needs a role. Usage: deactivate ROLE"),
        (
            "deactivate Global Administrator",
            "unexpected 'Administrator' (quote role names that contain spaces). Usage: deactivate ROLE",
        ),
        ("deactivate 'Global", "the quote before 'Global' is never closed. Usage: deactivate ROLE"),
        # assign
        ("assign", f"assign needs a user. {ASSIGN}"),
        ("assign bob@contoso.com", f"assign needs a role. {ASSIGN}"),
        ("assign bob@contoso.com admin", f"expected eligible or active after the role. {ASSIGN}"),
        (
            "assign bob@contoso.com Global Administrator active",
            "expected eligible or active after the role, got 'Administrator' "
            f"(quote role names that contain spaces). {ASSIGN}",
        ),
        (
            "assign bob admin active",
            f"'bob' is not a user; use an email, a Slack mention or a Teams mention. {ASSIGN}",
        ),
        (
            "assign a@b@c admin active",
            f"'a@b@c' is not a user; use an email, a Slack mention or a Teams mention. {ASSIGN}",
        ),
        (
            "assign @bob admin active",
            f"'@bob' is not a user; use an email, a Slack mention or a Teams mention. {ASSIGN}",
        ),
        (
            "assign <!here> admin active",
            f"'<!here>' is not a user; use an email, a Slack mention or a Teams mention. {ASSIGN}",
        ),
        (
            "assign <at> </at> admin active",
            f"'<at> </at>' is not a user; use an email, a Slack mention or a Teams mention. {ASSIGN}",
        ),
        (
            "assign <at>Bob Smith admin active",
            f"the Teams mention '<at>Bob Smith admin active' is never closed. {ASSIGN}",
        ),
        ("assign <@U123>x admin active", f"put a space after '<@U123>'. {ASSIGN}"),
        (
            "assign bob@contoso.com admin active 2h until 2027-06-30",
            f"give one DURATION or one until DATE, not both. {ASSIGN}",
        ),
        (
            "assign bob@contoso.com admin active until 2027-06-30 2h",
            f"give one DURATION or one until DATE, not both. {ASSIGN}",
        ),
        (
            "assign bob@contoso.com admin active until",
            f"until needs a date, e.g. until 2027-06-30. {ASSIGN}",
        ),
        (
            "assign bob@contoso.com admin active until tomorrow",
            f"'tomorrow' is not a date; use e.g. 2027-06-30 or 2027-06-30T12:00Z. {ASSIGN}",
        ),
        (
            "assign bob@contoso.com admin active until 2027-02-30",
            f"'2027-02-30' is not a date; use e.g. 2027-06-30 or 2027-06-30T12:00Z. {ASSIGN}",
        ),
        (
            "assign bob@contoso.com admin active until 9999-12-31T23:00-05:00",
            f"'9999-12-31T23:00-05:00' is not a date; use e.g. 2027-06-30 or 2027-06-30T12:00Z. {ASSIGN}",
        ),
        ("assign bob@contoso.com admin active 0s", f"duration must be positive. {ASSIGN}"),
        # remove
        ("remove", "remove needs a user. Usage: remove USER ROLE [eligible|active]"),
        (
            "remove bob@contoso.com",
            "remove needs a role. Usage: remove USER ROLE [eligible|active]",
        ),
        (
            "remove bob@contoso.com Global Administrator",
            "unexpected 'Administrator' (quote role names that contain spaces). "
            "Usage: remove USER ROLE [eligible|active]",
        ),
        (
            "remove bob@contoso.com admin active now",
            "unexpected 'now' (quote role names that contain spaces). Usage: remove USER ROLE [eligible|active]",
        ),
        # audit
        (
            "audit since",
            "since needs a duration, e.g. since 7d. Usage: audit [USER|ROLE] [since DURATION]",
        ),
        ("audit since 7x", f"'7x' {NOT_A_DURATION}. Usage: audit [USER|ROLE] [since DURATION]"),
        (
            "audit since yesterday",
            f"'yesterday' {NOT_A_DURATION}. Usage: audit [USER|ROLE] [since DURATION]",
        ),
        (
            'audit ""',
            "the user or role to audit is empty. Usage: audit [USER|ROLE] [since DURATION]",
        ),
        (
            "audit bob@contoso.com 7d",
            "unexpected '7d' (quote role names that contain spaces). Usage: audit [USER|ROLE] [since DURATION]",
        ),
    ],
)
def test_refuses_with_reason_and_usage(text: str, message: str) -> None:
    assert refusal(text) == message


def test_unknown_command_is_shown_short_and_on_one_line() -> None:
    message = refusal("x" * 80 + "\u2028more")
    assert message.startswith(f"unknown command '{'x' * 39}…'. Usage: one of help, roles")


def test_command_error_keeps_reason_and_usage_apart() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("cancel nope")
    assert caught.value.reason == "'nope' is not a request id (they look like R-7K2Q)"
    assert caught.value.usage == "cancel REQUEST_ID"
    assert isinstance(caught.value, ValueError)


def test_command_error_does_not_double_the_full_stop() -> None:
    assert str(CommandError("that is wrong.", "roles")) == "that is wrong. Usage: roles"


def test_command_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(CommandError("no", "roles")))
    assert (error.reason, error.usage, str(error)) == ("no", "roles", "no. Usage: roles")


def test_usage_lines_match_the_design() -> None:
    assert USAGE["activate"] == "activate ROLE [DURATION] [ticket:REF] [JUSTIFICATION…]"
    assert (
        USAGE["assign"] == "assign USER ROLE eligible|active [DURATION|until DATE] [JUSTIFICATION…]"
    )
    assert USAGE["deny"] == "deny REQUEST_ID JUSTIFICATION…"
    assert list(USAGE) == [
        "help", "roles", "activate", "requests", "cancel", "approvals", "approve",
        "deny", "deactivate", "assign", "remove", "audit", "digest", "link", "extend",
        "renew", "extend-assignment", "reviews", "review", "grants",
    ]  # fmt: skip


def test_help_text_lists_every_usage_once() -> None:
    lines = help_text().splitlines()
    assert len(lines) == len(USAGE)
    for line, usage in zip(lines, USAGE.values(), strict=True):
        assert line.startswith(usage + " — ")


# --- properties ---------------------------------------------------------------------------------

COMMAND_CLASSES = (
    Help, Roles, Activate, Requests, Cancel, Approvals, Approve, Deny, Deactivate, Assign, Remove,
    Audit, Digest, Link, Extend, Renew, ExtendAssignment, Reviews, Review, Grants,
)  # fmt: skip

# Plain st.text() rarely gets past the command word, so also build text from the grammar's own
# pieces: verbs, keywords, quotes, mentions and duration-ish tokens, glued in odd ways.
pieces = st.sampled_from(
    [
        *USAGE, "/pim", "since", "until", "eligible", "active", "ticket:", "ticket:jira:OPS-1",
        "ticket::", "R-7K2Q", "r-abcd", "2h", "-2h", "PT2H", "P1M", "0s", "9" * 30 + "d",
        "2027-06-30", "2027-06-30T12:00Z", "9999-12-31T23:59-01:00", '"', "'", "\u201c", "\u2019",
        '"Global Admin"', "<@U1>", "<@U1|bob>", "<at>Bob", "</at>", "<at>", "<", ">",
        "bob@x.com", "@", "<mailto:a@b|a@b>", "I'm", " ", "  ", "\n", "\t", "\u00a0", "\u2028",
        "x" * 300, "\u0662", "\u212a", "\x00",
    ]
)  # fmt: skip
grammar_like = st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=12).map(
    lambda parts: "".join(parts)
)
spaced = st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=12).map(" ".join)


def _check(text: str) -> None:
    try:
        command = parse_command(text)
    except CommandError as err:
        assert len(str(err).splitlines()) == 1
        assert ". Usage: " in str(err)
    else:
        assert isinstance(command, COMMAND_CLASSES)


@settings(max_examples=300)
@given(st.text())
def test_any_text_gives_a_command_or_a_one_line_command_error(text: str) -> None:
    _check(text)


@settings(max_examples=300)
@given(st.one_of(grammar_like, spaced))
def test_grammar_shaped_text_gives_a_command_or_a_one_line_command_error(text: str) -> None:
    _check(text)


@settings(max_examples=200)
@given(
    st.sampled_from(["activate admin 2h", "approve R-7K2Q", "deny R-7K2Q"]), st.text(max_size=600)
)
def test_justification_is_never_longer_than_500(prefix: str, tail: str) -> None:
    try:
        command = parse_command(f"{prefix} {tail}")
    except CommandError:
        return
    justification = getattr(command, "justification", None)
    assert justification is None or 0 < len(justification) <= 500
    assert justification is None or justification == justification.strip()
