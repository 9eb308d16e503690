"""Identity binding in the engine: an email lookup fills in an id nobody holds and never
replaces one; a conflicting lookup is refused, audited and raised to the admins in the same
transaction; only an admin rebinds (chat `link`, or the CLI as operator), on the record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cards import views as v
from handlers.chat import command_table, run_text
from handlers.commands import ChatAccount, UserRef
from handlers.digest.report import DigestOptions
from handlers.errors import UnknownPrincipal
from handlers.identity import link_by_email, remember_conversation
from handlers.linking import link_account
from storage.models import AuditEvent, ConversationRef, Principal


async def person(eng, email: str) -> Principal:
    async with eng.uow.transaction() as s:
        found = await s.scalar(select(Principal).where(Principal.email == email))
    assert found is not None
    return found


async def events(eng, action: str) -> list[AuditEvent]:
    async with eng.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ).all()
        )


async def test_a_lookup_fills_in_an_id_nobody_holds(eng):
    got = await link_by_email(
        eng.uow, eng.clock, platform="slack", user_id="U0BOB", email="BOB@contoso.com"
    )
    assert got == "bob@contoso.com" and (await person(eng, got)).slack_id == "U0BOB"
    (linked,) = await events(eng, "principal.slack_id_linked")
    assert linked.details == {"slack_id": "U0BOB"}


async def test_a_lookup_never_replaces_a_bound_id(eng):
    await link_by_email(
        eng.uow, eng.clock, platform="teams", user_id="aad-alice", email="alice@contoso.com"
    )
    before = await eng.count(AuditEvent)
    for _ in range(2):
        got = await link_by_email(
            eng.uow, eng.clock, platform="teams", user_id="aad-mallory", email="alice@contoso.com"
        )
        assert got is None
    assert (await person(eng, "alice@contoso.com")).teams_id == "aad-alice"
    refused = await events(eng, "principal.link_refused")
    assert [e.details for e in refused] == [
        {"platform": "teams", "presented_id": "aad-mallory", "bound_id": "aad-alice"}
    ] * 2
    assert await eng.count(AuditEvent) == before + 2
    # One alert per account and person a day, to every admin (Alice is the only one).
    (alert,) = await eng.outbox(v.ALERT)
    assert alert[0] == "alice@contoso.com"
    assert "aad-mallory" in alert[2]["headline"] and "alice@contoso.com" in alert[2]["headline"]
    assert "pim-bot people link alice@contoso.com teams:aad-mallory" in alert[2]["details"][1]
    eng.clock.advance(timedelta(hours=25))
    await link_by_email(
        eng.uow, eng.clock, platform="teams", user_id="aad-mallory", email="alice@contoso.com"
    )
    assert len(await eng.outbox(v.ALERT)) == 2


async def test_a_lookup_naming_an_id_held_by_someone_else_is_refused(eng):
    await link_by_email(
        eng.uow, eng.clock, platform="slack", user_id="U0X", email="carol@contoso.com"
    )
    got = await link_by_email(
        eng.uow, eng.clock, platform="slack", user_id="U0X", email="dave@contoso.com"
    )
    assert got is None and (await person(eng, "dave@contoso.com")).slack_id is None
    (refused,) = await events(eng, "principal.link_refused")
    assert refused.details["held_by"] == "carol@contoso.com"


async def test_an_admin_links_in_chat_and_addresses_follow(eng):
    await link_by_email(
        eng.uow, eng.clock, platform="teams", user_id="aad-dave", email="dave@contoso.com"
    )
    for key in ("aad-dave", "aad-dave2"):
        await remember_conversation(
            eng.uow,
            eng.clock,
            platform="teams",
            key=key,
            ref={"conversation": {"id": key}},
            user_id=key,
        )
    answer = await run_text(
        eng.uow,
        eng.clock,
        commands=command_table(digest=DigestOptions()),
        actor="bob@contoso.com",
        text="link dave@contoso.com teams:aad-dave2",
    )
    assert answer.text == "Only admins can link people to chat accounts." and not answer.ok
    answer = await run_text(
        eng.uow,
        eng.clock,
        commands=command_table(digest=DigestOptions()),
        actor="alice@contoso.com",
        text="link dave@contoso.com teams:aad-dave2",
    )
    assert answer.text == "Dave Duty (dave@contoso.com) is now Teams user aad-dave2 (was aad-dave)."
    dave = await person(eng, "dave@contoso.com")
    assert dave.teams_id == "aad-dave2"
    async with eng.uow.transaction() as s:
        refs = {r.key: r.principal_id for r in (await s.scalars(select(ConversationRef))).all()}
    assert refs == {"aad-dave": None, "aad-dave2": dave.id}
    (linked,) = await events(eng, "principal.linked")
    assert linked.actor == "alice@contoso.com"
    assert linked.details == {"platform": "teams", "old_id": "aad-dave", "new_id": "aad-dave2"}
    again = await run_text(
        eng.uow,
        eng.clock,
        commands=command_table(digest=DigestOptions()),
        actor="alice@contoso.com",
        text="link dave@contoso.com teams:aad-dave2",
    )
    assert again.text.endswith("is already Teams user aad-dave2; nothing changed.")
    assert len(await events(eng, "principal.linked")) == 1


async def test_linking_an_id_someone_else_holds_moves_it_on_the_record(eng):
    await link_by_email(
        eng.uow, eng.clock, platform="slack", user_id="U0SHARED", email="carol@contoso.com"
    )
    text = await link_account(
        eng.uow,
        eng.clock,
        actor="cli:ops",
        operator=True,
        user=UserRef("email", "dave@contoso.com"),
        account=ChatAccount("slack", "U0SHARED"),
    )
    assert text == (
        "Dave Duty (dave@contoso.com) is now Slack user U0SHARED; "
        "carol@contoso.com is no longer linked to it."
    )
    assert (await person(eng, "carol@contoso.com")).slack_id is None
    (unlinked,) = await events(eng, "principal.unlinked")
    assert unlinked.target == "carol@contoso.com" and unlinked.actor == "cli:ops"
    (linked,) = await events(eng, "principal.linked")
    assert linked.details == {"platform": "slack", "old_id": None, "new_id": "U0SHARED"}


async def test_linking_someone_unknown_changes_nothing(eng):
    before = await eng.snapshot()
    with pytest.raises(UnknownPrincipal):
        await link_account(
            eng.uow,
            eng.clock,
            actor="cli",
            operator=True,
            user=UserRef("email", "nobody@contoso.com"),
            account=ChatAccount("slack", "U0NOBODY"),
        )
    assert await eng.snapshot() == before
