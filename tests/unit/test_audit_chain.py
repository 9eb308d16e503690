"""The audit log proves that nothing was edited, removed or reordered."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from storage.audit import verify_chain
from storage.models import AuditEvent
from tests.unit.helpers import BOB, history, say


async def verify(eng):
    async with eng.uow.transaction() as s:
        return await verify_chain(s)


async def test_untouched_chain_verifies(eng):
    await history(eng)
    result = await verify(eng)
    assert result.ok and result.checked == await eng.count(AuditEvent) > 5


async def test_edited_row_is_found(eng):
    await history(eng)
    async with eng.uow.transaction() as s:
        target = (
            await s.scalars(select(AuditEvent).where(AuditEvent.action == "request.approved"))
        ).one()
        await s.execute(
            update(AuditEvent).where(AuditEvent.id == target.id).values(actor="mallory@contoso.com")
        )
    result = await verify(eng)
    assert not result.ok and result.broken_id == target.id
    assert "edited" in result.reason


async def test_removed_row_is_found(eng):
    await history(eng)
    async with eng.uow.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.id == 3))
    result = await verify(eng)
    assert not result.ok and result.broken_id == 4 and result.checked == 2


async def test_reordered_rows_are_found(eng):
    await history(eng)
    async with eng.uow.transaction() as s:
        a, b = (
            await s.scalars(
                select(AuditEvent).where(AuditEvent.id.in_([4, 5])).order_by(AuditEvent.id)
            )
        ).all()
        fields = ("at", "actor", "action", "target", "details", "prev_hash", "hash")
        va = {f: getattr(a, f) for f in fields}
        vb = {f: getattr(b, f) for f in fields}
        await s.execute(update(AuditEvent).where(AuditEvent.id == 4).values(**vb))
        await s.execute(update(AuditEvent).where(AuditEvent.id == 5).values(**va))
    result = await verify(eng)
    assert not result.ok and result.broken_id == 4


async def test_admin_reads_audit_in_chat_others_cannot(eng):
    await history(eng)
    view = await say(eng, "alice@contoso.com", "audit bob@contoso.com")
    assert [e.action for e in view.events][-1] == "role.activated"
    assert all(e.target.startswith("bob@contoso.com/") or e.actor == BOB for e in view.events)
    refused = await say(eng, BOB, "audit")
    assert not refused.ok and refused.text == "Only admins can read the audit trail."
