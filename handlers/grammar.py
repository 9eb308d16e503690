"""Turn the text of a ``/pim …`` command into a Command (the grammar: README, "Commands").

Transports show a CommandError to the person as-is, so parse_command raises nothing else, whatever
the text, and every message is one line saying what was wrong and how the command is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from handlers import commands
from handlers.durations import DurationError, looks_like_duration, parse_duration
from handlers.grammar_cursor import Cursor, shown
from handlers.user_text import control_character, refusal
from vocab.limits import MAX_JUSTIFICATION
from vocab.states import ReviewDecision, ScheduleKind

__all__ = [
    "MAX_JUSTIFICATION",
    "USAGE",
    "CommandError",
    "help_text",
    "parse_account",
    "parse_command",
]
_MAX_ROLE = 256  # Entra caps display names at 256; longer is a paste accident.
_MAX_TICKET = 64

USAGE: dict[str, str] = {
    "help": "help [TOPIC]",
    "roles": "roles",
    "activate": "activate ROLE [DURATION] [ticket:REF] [JUSTIFICATION…]",
    "requests": "requests",
    "cancel": "cancel REQUEST_ID",
    "approvals": "approvals",
    "approve": "approve REQUEST_ID [JUSTIFICATION…]",
    "deny": "deny REQUEST_ID JUSTIFICATION…",
    "deactivate": "deactivate ROLE",
    "assign": "assign USER ROLE eligible|active [DURATION|until DATE] [JUSTIFICATION…]",
    "remove": "remove USER ROLE [eligible|active]",
    "audit": "audit [USER|ROLE] [since DURATION]",
    "digest": "digest",
    "link": "link USER slack:U…|teams:…",
    "extend": "extend ROLE [DURATION] [JUSTIFICATION…]",
    "renew": "renew ROLE [DURATION] [JUSTIFICATION…]",
    "extend-assignment": "extend-assignment USER ROLE [eligible|active] DURATION|until DATE "
    "[JUSTIFICATION…]",
    "reviews": "reviews",
    "review": "review ITEM approve|deny|dontknow [REASON…]",
    "grants": "grants [failed]",
}

_SUMMARY: dict[str, str] = {
    "help": "this list, or how to write one command",
    "roles": "my eligible and active roles",
    "activate": "turn on a role for a while (start later: add at 14:00 or at tomorrow "
    "09:00 after the duration); with no ROLE, open the form",
    "requests": "my pending requests",
    "cancel": "withdraw one of my pending requests",
    "approvals": "requests I can decide",
    "approve": "approve a request",
    "deny": "deny a request, saying why",
    "deactivate": "turn off an active role early",
    "assign": "make someone eligible for, or active in, a role (admins)",
    "remove": "take away someone's assignment to a role (admins)",
    "audit": "recent activity, optionally for one user or role (admins)",
    "digest": "preview the periodic digest (admins)",
    "link": "say which Slack or Teams account is this person's (admins)",
    "extend": "more time on a role that is active now (within its maximum)",
    "renew": "ask admins for more time on an assignment that ends soon",
    "extend-assignment": "move the end of someone's assignment (admins)",
    "reviews": "access review items waiting for me",
    "review": "decide one access review item (deny needs a reason)",
    "grants": "grants in Entra, Azure, Slack and webhooks, or only the failed ones (admins)",
}

_ANY_COMMAND = "one of " + ", ".join(USAGE)
_SPACES_HINT = " (quote role names that contain spaces)"
# `audit` takes a person or a role: the hint must not assume which one was meant.
_AUDIT_HINT = ' (quote a name that contains spaces, e.g. audit "Bob Builder", or give an email)'

_FLAGS = re.IGNORECASE | re.ASCII
_REQUEST_ID = re.compile(r"R-[A-Z0-9]{4,8}", _FLAGS)
_SLACK_USER = re.compile(r"<@([A-Z][A-Z0-9]+)(?:\|[^>]*)?>", _FLAGS)
_SLACK_MAILTO = re.compile(r"<mailto:([^|>]+)(?:\|[^>]*)?>", _FLAGS)
_TEAMS_MENTION = re.compile(r"<at>(.*)</at>", _FLAGS | re.DOTALL)
# Exactly one @ with something either side; brackets and quotes mean a mangled paste, not a user.
_EMAIL = re.compile(r"[^@\s<>()\[\]\\,;:\"']+@[^@\s<>()\[\]\\,;:\"']+")
_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?",
    _FLAGS,
)
# Slack user ids are upper-case letters and digits (U… or, in Enterprise Grid, W…); a Teams
# account is the Entra object id (a GUID), but any plain id Teams might send is accepted.
_SLACK_ACCOUNT = re.compile(r"[UW][A-Z0-9]{2,31}", re.ASCII)
_TEAMS_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_KINDS = {k.value: k for k in ScheduleKind}  # `assign` takes the stored words


class CommandError(ValueError):
    """A command that cannot be run as typed: why, and how it is written."""

    def __init__(self, reason: str, usage: str) -> None:
        super().__init__(reason, usage)
        self.reason = reason
        self.usage = usage

    def __str__(self) -> str:
        reason = " ".join(self.reason.split()).rstrip(".")
        return f"{reason}. Usage: {' '.join(self.usage.split())}"


def parse_command(text: str) -> commands.Command:
    """Parse one command, with or without the leading ``/pim``; empty text asks for help."""
    body = text.replace("\r\n", "\n").strip()
    if (code := control_character(body)) is not None:
        verb = (body.split() or [""])[0].lower()
        raise CommandError(refusal("The command", code), USAGE.get(verb, _ANY_COMMAND))
    if body[:4].lower() == "/pim" and (len(body) == 4 or body[4].isspace()):
        body = body[4:].strip()
    if not body:
        return commands.Help(None)
    word = body.split(maxsplit=1)[0]
    name = word.lower()
    parse = _PARSERS.get(name)
    if parse is None:
        raise CommandError(f"unknown command {shown(word)}", _ANY_COMMAND)
    fail = partial(CommandError, usage=USAGE[name])
    return parse(Cursor(body, name, start=len(word), fail=fail))


def help_text(topic: str | None = None) -> str:
    """Every command on its own line, with what it is for; or just the one asked about."""
    if topic in USAGE:
        return f"{USAGE[topic]} — {_SUMMARY[topic]}"
    lines = "\n".join(f"{USAGE[name]} — {_SUMMARY[name]}" for name in USAGE)
    return lines if topic is None else f"No command '{topic}'. Commands:\n{lines}"


def _activate(cur: Cursor) -> commands.Command:
    role = _optional_role(cur)
    if role is None:
        return commands.Activate(None, None, None, None)
    duration: timedelta | None = None
    ticket: commands.Ticket | None = None
    # Duration and ticket may come in either order; anything else starts the justification.
    typed: str | None = None
    start: commands.StartTime | None = None
    while (word := cur.peek_word()) is not None:
        if duration is None and looks_like_duration(word):
            duration, typed = _duration(cur, word), word
        elif ticket is None and word[:7].lower() == "ticket:":
            ticket = _ticket(cur, word[7:])
        elif start is None and word.lower() == "at" and (start := _start(cur)) is not None:
            continue  # _start read its words
        else:
            break
        cur.word()
    return commands.Activate(role, duration, ticket, _justification(cur), typed, start)


_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", _FLAGS)


def _start(cur: Cursor) -> commands.StartTime | None:
    """`at HH:MM` or `at tomorrow HH:MM`; None (nothing read) when the words after `at`
    are no time, so "at the office" stays the justification."""
    saved = cur.pos
    cur.word()  # "at"
    tomorrow = (cur.peek_word() or "").lower() == "tomorrow"
    if tomorrow:
        cur.word()
    word = cur.peek_word() or ""
    if (found := _CLOCK.fullmatch(word)) is None:
        if tomorrow:
            raise cur.fail(f"{shown(word)} is not a time; write e.g. at tomorrow 09:00")
        cur.pos = saved
        return None
    cur.word()
    return commands.StartTime(int(found.group(1)), int(found.group(2)), tomorrow)


def _extend(cur: Cursor) -> commands.Command:
    role = _role(cur)
    duration: timedelta | None = None
    typed = cur.peek_word()
    if typed is not None and looks_like_duration(typed):
        duration = _duration(cur, typed)
        cur.word()
    else:
        typed = None
    return commands.Extend(role, duration, _justification(cur), typed)


def _renew(cur: Cursor) -> commands.Command:
    role = _role(cur)
    duration: timedelta | None = None
    if (word := cur.peek_word()) is not None and looks_like_duration(word):
        duration = _duration(cur, word)
        cur.word()
    return commands.Renew(role, duration, _justification(cur))


def _extend_assignment(cur: Cursor) -> commands.Command:
    user = _user(cur)
    role = _role(cur)
    kind = _KINDS.get((cur.peek_word() or "").lower())
    if kind is not None:
        cur.word()
    word = cur.peek_word()
    if word is not None and word.lower() == "until":
        cur.word()
        return commands.ExtendAssignment(
            user, role, kind, until=_until(cur), justification=_justification(cur)
        )
    if word is None or not looks_like_duration(word):
        got = f", got {shown(word)}{_SPACES_HINT}" if word is not None else ""
        raise cur.fail(f"extend-assignment needs a DURATION or until DATE{got}")
    duration = _duration(cur, word)
    cur.word()
    return commands.ExtendAssignment(
        user, role, kind, duration=duration, justification=_justification(cur)
    )


def _approve(cur: Cursor) -> commands.Command:
    return commands.Approve(_request_id(cur), _justification(cur))


def _deny(cur: Cursor) -> commands.Command:
    request_id = _request_id(cur)
    reason = _justification(cur)
    if reason is None:
        raise cur.fail("deny needs a reason, so the requester knows what to change")
    return commands.Deny(request_id, reason)


def _cancel(cur: Cursor) -> commands.Command:
    request_id = _request_id(cur)
    cur.done()
    return commands.Cancel(request_id)


def _deactivate(cur: Cursor) -> commands.Command:
    role = _role(cur)
    cur.done(_SPACES_HINT)
    return commands.Deactivate(role)


def _assign(cur: Cursor) -> commands.Command:
    user = _user(cur)
    role = _role(cur)
    word = cur.word()
    kind = _KINDS.get(word.lower()) if word is not None else None
    if kind is None:
        got = f", got {shown(word)}{_SPACES_HINT}" if word is not None else ""
        raise cur.fail(f"expected eligible or active after the role{got}")
    duration: timedelta | None = None
    until: datetime | None = None
    word = cur.peek_word()
    if word is not None and word.lower() == "until":
        cur.word()
        until = _until(cur)
    elif word is not None and looks_like_duration(word):
        duration = _duration(cur, word)
        cur.word()
    after = cur.peek_word()
    clause = duration is not None or until is not None
    if clause and after and (after.lower() == "until" or looks_like_duration(after)):
        raise cur.fail("give one DURATION or one until DATE, not both")
    return commands.Assign(user, role, kind, duration, until, _justification(cur))


def _remove(cur: Cursor) -> commands.Command:
    user = _user(cur)
    role = _role(cur)
    word = cur.peek_word()
    kind = _KINDS.get(word.lower()) if word is not None else None
    if kind is not None:
        cur.word()
    cur.done(_SPACES_HINT)
    return commands.Remove(user, role, kind)


_GRANTS_FILTER = "failed"  # a word of the grammar, not a stored state


def _grants(cur: Cursor) -> commands.Command:
    word = cur.word()
    if word is not None and word.lower() != _GRANTS_FILTER:
        raise cur.fail(f"grants takes only the word failed, not {word!r}")
    cur.done()
    return commands.Grants(failed=word is not None)


def _audit(cur: Cursor) -> commands.Command:
    subject: str | None = None
    word = cur.peek_word()
    if word is not None and word.lower() != "since":
        subject = cur.operand()
        if not subject:
            raise cur.fail("the user or role to audit is empty")
    since: timedelta | None = None
    amount: str | None = None
    word = cur.peek_word()
    if word is not None and word.lower() == "since":
        cur.word()
        amount = cur.word()
        if amount is None:
            raise cur.fail("since needs a duration, e.g. since 7d")
        since = _duration(cur, amount)
    cur.done(_AUDIT_HINT if subject and "@" not in subject else _SPACES_HINT)
    return commands.Audit(subject, since, amount)


def _link(cur: Cursor) -> commands.Command:
    user = _user(cur)
    raw = cur.operand()
    if raw is None:
        raise cur.fail("link needs the account, e.g. slack:U0123ABCD or teams:<object id>")
    try:
        account = parse_account(raw)
    except CommandError as err:
        raise cur.fail(err.reason) from None
    cur.done()
    return commands.Link(user, account)


def parse_account(text: str) -> commands.ChatAccount:
    """``slack:U…``, ``teams:…`` or a Slack mention ``<@U…>``; CommandError when it is none."""
    raw = text.strip()
    if found := _SLACK_USER.fullmatch(raw):
        return commands.ChatAccount("slack", found.group(1).upper())
    platform, colon, account = raw.partition(":")
    if colon and platform.lower() == "slack":
        if _SLACK_ACCOUNT.fullmatch(account):
            return commands.ChatAccount("slack", account)
        raise CommandError(
            f"{shown(raw)} is not a Slack user id (they look like U0123ABCD)", USAGE["link"]
        )
    if colon and platform.lower() == "teams":
        if _TEAMS_ACCOUNT.fullmatch(account):
            return commands.ChatAccount("teams", account)
        raise CommandError(
            f"{shown(raw)} is not a Teams user id (their Entra object id)", USAGE["link"]
        )
    raise CommandError(
        f"{shown(raw)} is not an account; write slack:U0123ABCD or teams:<Entra object id>",
        USAGE["link"],
    )


_REVIEW_DECISIONS = {
    "approve": ReviewDecision.APPROVE,
    "deny": ReviewDecision.DENY,
    "dontknow": ReviewDecision.DONT_KNOW,
    "don't-know": ReviewDecision.DONT_KNOW,
}


def _review(cur: Cursor) -> commands.Command:
    word = cur.word()
    if word is None:
        raise cur.fail("review needs an item number (from `reviews`)")
    number = word.lstrip("#")
    if not number.isascii() or not number.isdigit() or len(number) > 12:
        raise cur.fail(f"{shown(word)} is not a review item number (they look like 12)")
    said = cur.word()
    decision = _REVIEW_DECISIONS.get(said.lower()) if said is not None else None
    if decision is None:
        got = f", got {shown(said)}" if said is not None else ""
        raise cur.fail(f"expected approve, deny or dontknow after the item{got}")
    return commands.Review(int(number), decision, _justification(cur))


def _help(cur: Cursor) -> commands.Command:
    topic = cur.operand()
    cur.done()
    return commands.Help(topic.lower() if topic else None)


def _bare(make: Callable[[], commands.Command]) -> Callable[[Cursor], commands.Command]:
    def parse(cur: Cursor) -> commands.Command:
        cur.done()
        return make()

    return parse


# One table, not an if/elif chain: adding a verb is a USAGE line, a _SUMMARY line and an entry here.
_PARSERS: dict[str, Callable[[Cursor], commands.Command]] = {
    "help": _help,
    "roles": _bare(commands.Roles),
    "activate": _activate,
    "requests": _bare(commands.Requests),
    "cancel": _cancel,
    "approvals": _bare(commands.Approvals),
    "approve": _approve,
    "deny": _deny,
    "deactivate": _deactivate,
    "assign": _assign,
    "remove": _remove,
    "audit": _audit,
    "digest": _bare(commands.Digest),
    "link": _link,
    "extend": _extend,
    "renew": _renew,
    "extend-assignment": _extend_assignment,
    "reviews": _bare(commands.Reviews),
    "review": _review,
    "grants": _grants,
}


def _role(cur: Cursor) -> str:
    if (role := _optional_role(cur)) is None:
        raise cur.fail(f"{cur.command} needs a role")
    return role


def _optional_role(cur: Cursor) -> str | None:
    role = cur.operand()
    if role == "":
        raise cur.fail("the role name is empty")
    if role is not None and len(role) > _MAX_ROLE:
        raise cur.fail(f"the role name is too long ({len(role)} characters; at most {_MAX_ROLE})")
    return role


def _user(cur: Cursor) -> commands.UserRef:
    raw = cur.operand()
    if raw is None:
        raise cur.fail(f"{cur.command} needs a user")
    if found := _SLACK_USER.fullmatch(raw):
        return commands.UserRef("slack", found.group(1).upper())
    if found := _TEAMS_MENTION.fullmatch(raw):
        name = found.group(1).strip()
        if name:
            return commands.UserRef("teams", name)
    # Slack auto-links a typed address as <mailto:a@b|a@b>.
    address = found.group(1) if (found := _SLACK_MAILTO.fullmatch(raw)) else raw
    if _EMAIL.fullmatch(address):
        return commands.UserRef("email", address.lower())
    raise cur.fail(f"{shown(raw)} is not a user; use an email, a Slack mention or a Teams mention")


def _request_id(cur: Cursor) -> str:
    word = cur.word()
    if word is None:
        raise cur.fail(f"{cur.command} needs a request id")
    if not _REQUEST_ID.fullmatch(word):
        raise cur.fail(f"{shown(word)} is not a request id (they look like R-7K2Q)")
    return word.upper()


def _duration(cur: Cursor, word: str) -> timedelta:
    try:
        return parse_duration(word)
    except DurationError as err:
        raise cur.fail(str(err)) from None


def _ticket(cur: Cursor, ref: str) -> commands.Ticket:
    system, colon, number = ref.partition(":") if ":" in ref else ("", "", ref)
    if not number or (colon and not system):
        raise cur.fail("ticket needs a reference, e.g. ticket:INC123 or ticket:jira:OPS-12")
    if len(ref) > _MAX_TICKET:
        raise cur.fail(f"the ticket reference is too long (at most {_MAX_TICKET} characters)")
    return commands.Ticket(system.lower() if system else None, number)


def _until(cur: Cursor) -> datetime:
    word = cur.word()
    if word is None:
        raise cur.fail("until needs a date, e.g. until 2027-06-30")
    if _DATE.fullmatch(word):
        try:
            parsed = datetime.fromisoformat(word.upper())
            # A date without an offset means UTC: the bot never guesses a reader's time zone.
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (ValueError, OverflowError):
            pass  # Out-of-range values (month 13, year 9999 plus an offset) get the message below.
    raise cur.fail(f"{shown(word)} is not a date; use e.g. 2027-06-30 or 2027-06-30T12:00Z")


def _justification(cur: Cursor) -> str | None:
    text = cur.rest()
    if len(text) > MAX_JUSTIFICATION:
        raise cur.fail(
            f"justification is too long ({len(text)} characters; at most {MAX_JUSTIFICATION})"
        )
    return text or None
