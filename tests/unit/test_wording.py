"""What people read: the wording defects seen in a first session (issue 12, items 4, 9-11)."""

from __future__ import annotations

from cards.text import render
from cards.views import AuditLine, AuditView
from handlers.forms import submit_activation_form
from tests.unit.conftest import Engine
from tests.unit.helpers import ALICE, BOB, CAROL, DAVE, say


async def test_remove_names_the_missing_assignment(eng: Engine) -> None:
    out = render(await say(eng, ALICE, "remove dave@contoso.com quick eligible"))
    assert out == "✗ Dave Duty has no eligible assignment for Quick Role."
    out = render(await say(eng, ALICE, "remove dave@contoso.com quick"))
    assert out == "✗ Dave Duty has no assignment for Quick Role."


async def test_audit_since_echoes_the_duration_as_typed(eng: Engine) -> None:
    await say(eng, BOB, "activate quick 10m checking")
    out = render(await say(eng, ALICE, "audit since 1d"))
    assert out.splitlines()[0] == "Audit trail since 1d:"
    out = render(await say(eng, ALICE, "audit quick since 90m"))
    assert out.splitlines()[0] == "Audit trail for quick since 90m:"


async def test_audit_of_a_person_by_name_hints_at_people_too(eng: Engine) -> None:
    out = render(await say(eng, ALICE, "audit Bob Builder"))
    assert "quote role names" not in out
    assert 'audit "Bob Builder"' in out and "email" in out
    await say(eng, BOB, "activate quick 10m checking")
    out = render(await say(eng, ALICE, 'audit "Bob Builder"'))
    assert out.startswith("Audit trail for bob@contoso.com:") and "role.activated" in out


def test_audit_columns_fit_their_longest_actor() -> None:
    view = AuditView(
        title="Audit trail",
        events=(
            AuditLine(
                id=1,
                at="2026-11-27T09:00:00+00:00",
                actor="policy:examples/policy.yaml",
                action="policy.role.created",
                target="global-admin",
                summary="",
            ),
            AuditLine(
                id=2,
                at="2026-11-27T09:00:00+00:00",
                actor="bob@contoso.com",
                action="role.activated",
                target="bob@contoso.com/quick",
                summary="",
            ),
        ),
    )
    rows = render(view).splitlines()[1:]
    assert rows[0].index("policy.role.created") == rows[1].index("role.activated")
    assert "policy:examples/policy.yaml  policy.role.created" in rows[0]


async def test_a_near_miss_role_name_gets_a_suggestion(eng: Engine) -> None:
    out = render(await say(eng, BOB, "activate helpdesk 1h printers"))
    assert out == "✗ No role called 'helpdesk'. Did you mean helpdesk-admin?"
    out = render(await say(eng, BOB, "activate helpdsk-admin 1h printers"))
    assert out == "✗ No role called 'helpdsk-admin'. Did you mean helpdesk-admin?"


async def test_an_unknown_role_lists_only_roles_i_can_use(eng: Engine) -> None:
    out = render(await say(eng, DAVE, "activate nothing-like-it 1h x"))
    assert out == "✗ No role called 'nothing-like-it'. Your roles: billing-admin."
    assert "global-admin" not in out  # Dave cannot ask for it: no use listing it


async def test_approvals_list_asks_for_a_reason_where_the_card_does(eng: Engine) -> None:
    rid = (await say(eng, BOB, "activate global-admin 1h keys")).request.id
    out = render(await say(eng, CAROL, "approvals"))
    assert f"→ approve {rid} <reason>   |   deny {rid} <reason>" in out
    refused = render(await say(eng, CAROL, f"approve {rid}"))
    assert refused.startswith("✗")  # the hint said a reason is needed, and it is


async def test_duration_refusals_echo_what_was_typed(eng: Engine) -> None:
    out = render(await say(eng, BOB, "activate helpdesk-admin 99h printers"))
    assert out.endswith("you asked for 99h.") and "4d3h" not in out
    outcome = await submit_activation_form(
        eng.uow,
        eng.clock,
        actor=BOB,
        role="helpdesk-admin",
        duration="99h",
        justification="x",
        ticket="",
    )
    assert outcome.errors["duration"].endswith("you asked for 99h.")


async def test_assign_until_past_the_cap_is_refused(eng: Engine) -> None:
    before = await eng.snapshot()
    out = render(await say(eng, ALICE, "assign dave@contoso.com quick eligible until 9999-12-31"))
    assert out.startswith("✗ The assignment would last too long (at most 3650 days)")
    assert await eng.snapshot() == before
