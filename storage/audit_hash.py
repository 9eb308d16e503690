"""How an audit row is hashed: plain SHA-256, or HMAC-SHA256 under the audit key.

Without a key anyone who can write to the database can rewrite a row and recompute every
later hash. With one (`AuditKey`), recomputing needs the secret. Each row records the key id it
was hashed with (NULL: plain SHA-256), so a log begun without a key stays verifiable after a key
is introduced: the first keyed row's prev_hash pins every unkeyed row before it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
_KEY_ID_LABEL = b"pim-bot audit key id"


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The secret behind the keyed chain. Its repr never shows the secret."""

    secret: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("an audit key cannot be empty")
        # Names the key in rows and checkpoints without revealing it (an HMAC output, like
        # every row hash).
        key_id = hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]
        object.__setattr__(self, "key_id", key_id)

    @classmethod
    def from_text(cls, text: str) -> AuditKey:
        return cls(text.encode("utf-8"))


def event_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any],
    prev_hash: str,
    key: AuditKey | None = None,
) -> str:
    """SHA-256 of the row's canonical JSON, or HMAC-SHA256 of it (with the key id) under key."""
    fields: list[Any] = [id, at.isoformat(), actor, action, target, details, prev_hash]
    if key is not None:
        fields.append(key.key_id)
    canonical = json.dumps(
        fields,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    ).encode()
    if key is None:
        return hashlib.sha256(canonical).hexdigest()
    return hmac.new(key.secret, canonical, hashlib.sha256).hexdigest()
