"""Each digest carries the audit checkpoint of its moment, so every admin's copy of the digest
is a copy of the chain's head kept outside the database."""

from __future__ import annotations

from sqlalchemy import delete

from cards import text
from cards.views import DIGEST, DigestView
from handlers.digest.report import DigestOptions
from handlers.digest.send import send_digest
from storage.audit_checkpoint import checkpoint_problem, current_checkpoint, parse_checkpoints
from storage.models import AuditEvent
from tests.unit.conftest import Engine


async def test_the_sent_digest_names_the_head_and_catches_a_later_tail_deletion(
    keyed: Engine,
) -> None:
    async with keyed.uow.transaction() as s:
        head = await current_checkpoint(s)
    assert head.seq > 0 and head.key_id is not None
    queued = await send_digest(
        keyed.uow, keyed.clock, period_end=keyed.clock.now(), options=DigestOptions()
    )
    assert queued == 1  # Alice
    [(email, _, payload)] = await keyed.outbox(DIGEST)
    view = DigestView.from_dict(payload["digest"])
    assert email == "alice@contoso.com" and view.checkpoint == head.line()
    # What Alice reads (or forwards, or saves) is enough to check the log later.
    [saved] = parse_checkpoints(text.render(view))
    assert saved == head

    async with keyed.uow.transaction() as s:
        assert await checkpoint_problem(s, saved) is None
        await s.execute(delete(AuditEvent).where(AuditEvent.id >= head.seq))
    async with keyed.uow.transaction() as s:
        assert "deleted at the tail" in (await checkpoint_problem(s, saved) or "")
