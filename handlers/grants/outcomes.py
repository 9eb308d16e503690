"""Recording what a provider said: status, audit event and, on failure, alerts, in one
transaction (the worker's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification, RoleRef
from handlers.directory import admins
from handlers.grants.extension import ENDLESS
from handlers.grants.jobs import ACTION
from handlers.grants.provider import GrantJob, ProviderError
from handlers.grants.state import EXTEND, GRANT
from handlers.grants.targets import PLACE, describe
from handlers.records import SYSTEM_ACTOR, audit, notify
from storage.grant_claims import release, settle
from storage.models import Grant, Principal, Schedule
from vocab.states import GrantStatus

MAX_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Outcome:
    row: Grant  # as claimed
    job: GrantJob
    error: Exception | None = None


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 2 ** min(attempts, 10)))


async def record(session: AsyncSession, outcome: Outcome, *, worker: str, now: datetime) -> None:
    if outcome.error is None:
        await _done(session, outcome, worker=worker, now=now)
    else:
        await _failed(session, outcome, outcome.error, worker=worker, now=now)


_EXPECTED = {v: k for k, v in ACTION.items()}
# The audit action of a call that took effect, and of one that gave up.
_DONE = {"grant": "grant.provisioned", "extend": "grant.extended", "revoke": "grant.revoked"}
_GAVE_UP = {
    "grant": "grant.failed",
    "extend": "grant.extend_failed",
    "revoke": "grant.revoke_failed",
}
_DOING = {"grant": "granting", "extend": "moving the end of", "revoke": "taking back"}


def _expected(job: GrantJob) -> GrantStatus:
    return _EXPECTED[job.action]


async def _done(session: AsyncSession, o: Outcome, *, worker: str, now: datetime) -> None:
    job, row = o.job, o.row
    if job.action == "revoke":
        values: dict[str, object] = {"status": GrantStatus.REVOKED, "revoked_at": now}
    elif await _end_moved(session, row, job):
        # The end moved while this call carried the old one: the new end goes out next.
        values = {"status": GrantStatus.PENDING_EXTENSION, "phase": EXTEND, "next_attempt_at": now}
        values |= {"attempts": 0, "provisioned_at": row.provisioned_at or now}
    else:
        # An extension keeps the time the access was first provisioned.
        first = (row.provisioned_at or now) if job.action == "extend" else now
        values = {"status": GrantStatus.PROVISIONED, "phase": GRANT, "provisioned_at": first}
    settled = await settle(
        session,
        grant_id=row.id,
        worker=worker,
        status=_expected(job),
        values={**values, "last_error": None},
    )
    if not settled:
        # A revoke (or an extension) came in while the call was out: it runs next, now.
        await release(session, grant_id=row.id, worker=worker, now=now)
    await audit(
        session,
        at=now,
        actor=SYSTEM_ACTOR,
        action=_DONE[job.action],
        target=f"{job.person.email}/{job.role_id}",
        grant=job.grant_id,
        request=job.request_id,
        kind=job.target.kind,
        target_ref=describe(job.target),
        **({"end": job.end.isoformat()} if job.action == "extend" and job.end else {}),
    )
    # Not "active in …" for access that is being taken back (or moved again at once).
    if settled and values["status"] == GrantStatus.PROVISIONED:
        await _tell_holder(session, o, now=now)


async def _end_moved(session: AsyncSession, row: Grant, job: GrantJob) -> bool:
    """Did the activation's end move after this job read it? (An extension that committed
    just after the claim: handlers.grants.extension.)"""
    end = await session.scalar(select(Schedule.end_at).where(Schedule.id == row.schedule_id))
    return end != job.end


async def _tell_holder(session: AsyncSession, o: Outcome, *, now: datetime) -> None:
    job, place = o.job, PLACE[o.job.target.kind]
    if job.action == "grant":
        headline = f"{job.role_name} is active in {place}."
    elif job.target.kind in ENDLESS:
        return  # nothing there moved: membership simply continues
    else:
        until = f"until {v.when(job.end.isoformat())}" if job.end else "with no end"
        headline = f"{job.role_name} in {place} now lasts {until}."
    notify(
        session,
        now=now,
        recipients=[await _person(session, o.row)],
        request_id=o.row.request_id,
        note=Notification(
            kind=v.GRANT_STATUS,
            role=RoleRef(id=job.role_id, name=job.role_name),
            headline=headline,
        ),
    )


async def _failed(
    session: AsyncSession, o: Outcome, err: Exception, *, worker: str, now: datetime
) -> None:
    job, row = o.job, o.row
    told_to_wait = isinstance(err, ProviderError) and err.retry_after is not None
    # Being told to slow down (429) is not a failure: it does not use up attempts.
    attempts = row.attempts + (0 if told_to_wait else 1)
    permanent = isinstance(err, ProviderError) and err.permanent
    message = str(err)[:500] or type(err).__name__
    if not permanent and attempts < MAX_ATTEMPTS:
        wait = (
            timedelta(seconds=err.retry_after)
            if isinstance(err, ProviderError) and err.retry_after is not None
            else backoff(attempts)
        )
        if not await settle(
            session,
            grant_id=row.id,
            worker=worker,
            status=_expected(job),
            values={"attempts": attempts, "next_attempt_at": now + wait, "last_error": message},
        ):
            await release(session, grant_id=row.id, worker=worker, now=now)
        return
    if not await settle(
        session,
        grant_id=row.id,
        worker=worker,
        status=_expected(job),
        values={"status": GrantStatus.FAILED, "attempts": attempts, "last_error": message},
    ):
        await release(session, grant_id=row.id, worker=worker, now=now)
        return
    await audit(
        session,
        at=now,
        actor=SYSTEM_ACTOR,
        action=_GAVE_UP[job.action],
        target=f"{job.person.email}/{job.role_id}",
        grant=job.grant_id,
        request=job.request_id,
        kind=job.target.kind,
        error=message,
    )
    await _alert(session, o, message, now=now)


async def _alert(session: AsyncSession, o: Outcome, message: str, *, now: datetime) -> None:
    job = o.job
    place, role = PLACE[job.target.kind], RoleRef(id=job.role_id, name=job.role_name)
    doing = _DOING[job.action]
    person = await _person(session, o.row)
    notify(
        session,
        now=now,
        recipients=[person],
        request_id=o.row.request_id,
        note=Notification(
            kind=v.GRANT_FAILED,
            role=role,
            headline=f"{job.role_name} in {place}: failed: {message}",
            details=(f"{doing} {describe(job.target)}; the admins are told.",),
        ),
    )
    others = [a for a in await admins(session) if a.id != person.id]
    notify(
        session,
        now=now,
        recipients=others,
        request_id=o.row.request_id,
        note=Notification(
            kind=v.GRANT_FAILED,
            role=role,
            headline=f"{doing.capitalize()} {job.role_name} for "
            f"{job.person.email} in {place} failed: {message}",
            details=(describe(job.target), f"grant {job.grant_id}"),
        ),
    )


async def _person(session: AsyncSession, row: Grant) -> Principal:
    person = await session.get(Principal, row.principal_id)
    assert person is not None  # a foreign key
    return person
