"""Recording what a provider said: status, audit event and, on failure, alerts, in one
transaction (the worker's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification, RoleRef
from handlers.directory import admins
from handlers.grants.provider import GrantJob, ProviderError
from handlers.grants.targets import PLACE, describe
from handlers.records import SYSTEM_ACTOR, audit, notify
from storage.grant_claims import release, settle
from storage.models import Grant, Principal
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


def _expected(job: GrantJob) -> GrantStatus:
    return (
        GrantStatus.PENDING_REVOKE if job.action == "revoke" else GrantStatus.PENDING_PROVISIONING
    )


async def _done(session: AsyncSession, o: Outcome, *, worker: str, now: datetime) -> None:
    job, row = o.job, o.row
    granted = job.action == "grant"
    values = (
        {"status": GrantStatus.PROVISIONED, "provisioned_at": now, "last_error": None}
        if granted
        else {"status": GrantStatus.REVOKED, "revoked_at": now, "last_error": None}
    )
    settled = await settle(
        session, grant_id=row.id, worker=worker, status=_expected(job), values=values
    )
    if not settled:
        # A revoke came in while the grant call was out: it runs next, now.
        await release(session, grant_id=row.id, worker=worker, now=now)
    await audit(
        session,
        at=now,
        actor=SYSTEM_ACTOR,
        action="grant.provisioned" if granted else "grant.revoked",
        target=f"{job.person.email}/{job.role_id}",
        grant=job.grant_id,
        request=job.request_id,
        kind=job.target.kind,
        target_ref=describe(job.target),
    )
    if granted and settled:  # not "active in …" for access that is being taken back
        notify(
            session,
            now=now,
            recipients=[await _person(session, row)],
            request_id=row.request_id,
            note=Notification(
                kind=v.GRANT_STATUS,
                role=RoleRef(id=job.role_id, name=job.role_name),
                headline=f"{job.role_name} is active in {PLACE[job.target.kind]}.",
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
        action="grant.failed" if job.action == "grant" else "grant.revoke_failed",
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
    doing = "granting" if job.action == "grant" else "taking back"
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
