"""Checkpoints: the head of the audit chain written down outside the database.

A verified chain only proves the rows agree with each other. Whoever deletes the newest rows,
or holds the key and rewrites a row and every hash after it, leaves a chain that still agrees.
A copy of an earlier head (sequence number and hash) is what catches both.

One line, easy to store and to find again in a saved digest:
    audit-checkpoint seq=57 hash=<64 hex> key=<key id|none>
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit_hash import GENESIS
from storage.models import AuditEvent

_LINE = re.compile(r"audit-checkpoint seq=(\d{1,18}) hash=([0-9a-f]{64}) key=([0-9a-f]{16}|none)")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    key_id: str | None

    def line(self) -> str:
        return f"audit-checkpoint seq={self.seq} hash={self.hash} key={self.key_id or 'none'}"


def parse_checkpoints(text: str) -> list[Checkpoint]:
    """Every checkpoint line in text (a file of them, or a saved digest), in order."""
    return [
        Checkpoint(int(m[1]), m[2], None if m[3] == "none" else m[3]) for m in _LINE.finditer(text)
    ]


async def current_checkpoint(session: AsyncSession) -> Checkpoint:
    head = (
        await session.execute(
            select(AuditEvent.id, AuditEvent.hash, AuditEvent.key_id)
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
    ).first()
    return Checkpoint(head[0], head[1], head[2]) if head else Checkpoint(0, GENESIS, None)


async def checkpoint_problem(session: AsyncSession, checkpoint: Checkpoint) -> str | None:
    """Why the chain no longer reaches this checkpoint, or None if it does. Run verify_chain
    too: this only compares the checkpoint's row."""
    if checkpoint.seq == 0:
        return None if checkpoint.hash == GENESIS else "checkpoint 0 must have the genesis hash"
    stored = await session.scalar(select(AuditEvent.hash).where(AuditEvent.id == checkpoint.seq))
    if stored is None:
        last = await session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        return (
            f"event {checkpoint.seq} of the checkpoint is gone and the log ends at event "
            f"{last or 0}: events were deleted at the tail"
        )
    if stored != checkpoint.hash:
        return (
            f"event {checkpoint.seq} no longer has the checkpoint's hash: the log was "
            "rewritten up to it"
        )
    return None
