"""PIM alerts: each one just below and just over its threshold, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from cards.views import AlertLine
from handlers.assignment import remove
from handlers.commands import UserRef
from handlers.digest.alerts import AlertThresholds, compute_alerts
from handlers.settings import RoleSettings
from storage.models import Role
from tests.unit.conftest import T0, Engine
from tests.unit.helpers import ALICE, BOB, CAROL, DAVE, Story

H = timedelta(hours=1)
SECOND = timedelta(seconds=1)
QUICK = AlertLine(
    code="no_approval_or_justification:quick",
    severity="medium",
    text="Quick Role can be activated with neither approval nor a justification, so nobody "
    "checks or explains its use. Require one of them.",
)


async def alerts(eng: Engine, **thresholds: object) -> tuple[AlertLine, ...]:
    return await compute_alerts(
        eng.uow, now=eng.clock.now(), thresholds=AlertThresholds(**thresholds)
    )  # type: ignore[arg-type]


def codes(lines: tuple[AlertLine, ...]) -> list[str]:
    return [a.code for a in lines]


async def test_a_fresh_install_only_flags_the_unchecked_role(eng: Engine) -> None:
    assert await alerts(eng) == (QUICK,)


async def test_too_many_permanent_holders(eng: Engine) -> None:
    story = Story(eng)
    await story.assign(T0, BOB, "global-admin", "active")
    await story.assign(T0, CAROL, "global-admin", "active")
    await story.assign(T0, DAVE, "global-admin", "active", until=T0 + 30 * 24 * H)
    await story.at(T0 + H)
    assert codes(await alerts(eng)) == [QUICK.code]  # two permanent: at the threshold
    assert codes(await alerts(eng, permanent_admins_per_role=1)) == [
        "permanent_holders:global-admin",
        QUICK.code,
    ]

    await story.assign(T0 + H, ALICE, "global-admin", "active")
    found = await alerts(eng)
    assert found[0] == AlertLine(
        code="permanent_holders:global-admin",
        severity="high",
        text="3 people hold Global Administrator permanently (threshold 2): Alice Admin, "
        "Bob Builder, Carol Chen. Make them eligible instead, or give the assignments "
        "an end date.",
    )
    await story.assign(T0 + H, DAVE, "helpdesk-admin", "active")
    await story.assign(T0 + H, BOB, "helpdesk-admin", "active")
    await story.assign(T0 + H, CAROL, "helpdesk-admin", "active")
    await story.assign(T0 + H, ALICE, "helpdesk-admin", "active")
    found = await alerts(eng)
    assert codes(found) == [
        "permanent_holders:global-admin",
        "permanent_holders:helpdesk-admin",
        QUICK.code,
    ]
    assert (
        "4 people hold Helpdesk Administrator permanently (threshold 2): Alice Admin, "
        "Bob Builder, Carol Chen and 1 more." in found[1].text
    )

    await story.at(T0 + 2 * H)
    await remove(
        eng.uow,
        eng.clock,
        actor=ALICE,
        user=UserRef("email", ALICE),
        role="global-admin",
        kind="active",
    )
    assert codes(await alerts(eng)) == ["permanent_holders:helpdesk-admin", QUICK.code]
    # judged at a past instant, the removed holder still counts
    past = await compute_alerts(eng.uow, now=T0 + H + SECOND, thresholds=AlertThresholds())
    assert codes(past)[:2] == ["permanent_holders:global-admin", "permanent_holders:helpdesk-admin"]


async def test_a_role_activated_too_often_within_the_window(eng: Engine) -> None:
    story = Story(eng)
    for i in range(4):
        await story.activate(T0 + i * H, BOB, "quick", SECOND)
    await story.at(T0 + 5 * H)
    assert codes(await alerts(eng)) == [QUICK.code]  # four in 24h
    await story.activate(T0 + 5 * H, BOB, "quick", SECOND)
    await story.at(T0 + 6 * H)
    found = await alerts(eng)
    assert found[0] == AlertLine(
        code="frequent_activation:quick:bob@contoso.com",
        severity="medium",
        text="Bob Builder activated Quick Role 5 times within 24h (threshold 5). Ask whether "
        "a longer activation would serve, or whether the work should be automated.",
    )
    assert codes(await alerts(eng, activations_per_window=6)) == [QUICK.code]
    assert codes(await alerts(eng, activation_window=4 * H)) == [QUICK.code]  # 4 in 4h
    # out of the look-back, the burst no longer alerts
    await story.at(T0 + 8 * 24 * H)
    assert codes(await alerts(eng)) == [QUICK.code]


async def test_the_same_count_spread_over_more_than_the_window_is_fine(eng: Engine) -> None:
    story = Story(eng)
    for i in range(5):  # 6h and a second apart: the five span 24h and 4s
        await story.activate(T0 + i * (6 * H + SECOND), BOB, "quick", SECOND)
    await story.at(T0 + 25 * H)
    assert codes(await alerts(eng)) == [QUICK.code]
    # the window [a - window, a] is closed: 24h and 4s is just enough
    assert codes(await alerts(eng, activation_window=24 * H + 4 * SECOND)) == [
        "frequent_activation:quick:bob@contoso.com",
        QUICK.code,
    ]


async def test_eligibility_nobody_uses(eng: Engine) -> None:
    story = Story(eng)
    await story.activate(T0 + 10 * 24 * H, BOB, "quick", SECOND)
    await story.at(T0 + 30 * 24 * H - SECOND)
    assert codes(await alerts(eng)) == [QUICK.code]  # eligible for less than 30 days
    await story.at(T0 + 30 * 24 * H)
    found = await alerts(eng)
    assert found == (
        QUICK,
        AlertLine(
            code="stale_eligibility:billing-admin",
            severity="low",
            text="1 person eligible for Billing Administrator has not activated it in "
            "30 days: Dave Duty. Remove eligibility nobody uses.",
        ),
        AlertLine(
            code="stale_eligibility:global-admin",
            severity="low",
            text="2 people eligible for Global Administrator have not activated it in "
            "30 days: Bob Builder, Carol Chen. Remove eligibility nobody uses.",
        ),
        AlertLine(
            code="stale_eligibility:helpdesk-admin",
            severity="low",
            text="1 person eligible for Helpdesk Administrator has not activated it in "
            "30 days: Bob Builder. Remove eligibility nobody uses.",
        ),
    )
    assert codes(await alerts(eng, stale_eligibility_days=31)) == [QUICK.code]


async def test_roles_with_neither_approval_nor_justification(eng: Engine) -> None:
    async with eng.uow.transaction() as s:
        await s.execute(
            update(Role)
            .where(Role.id == "helpdesk-admin")
            .values(
                settings=RoleSettings.from_mapping(
                    {"max_duration": "4h", "require_justification": False}
                ).to_mapping()
            )
        )
        await s.execute(
            update(Role)
            .where(Role.id == "quick")
            .values(
                settings=RoleSettings.from_mapping(
                    {"require_justification": False, "require_approval": True}
                ).to_mapping()
            )
        )
    assert codes(await alerts(eng)) == ["no_approval_or_justification:helpdesk-admin"]
