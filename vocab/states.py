"""Every state a row can be in, as one enum per column.

The values are what the database stores and what Microsoft Graph's PIM resources use where a
resource exists, so they never change. Code compares with the members, never with the strings:
a typo then fails at import, not as a query that silently matches nothing.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a schedule request asks for (Graph's unifiedRoleScheduleRequestActions)."""

    SELF_ACTIVATE = "selfActivate"
    SELF_DEACTIVATE = "selfDeactivate"
    ADMIN_ASSIGN = "adminAssign"
    ADMIN_REMOVE = "adminRemove"
    SELF_EXTEND = "selfExtend"
    SELF_RENEW = "selfRenew"
    ADMIN_EXTEND = "adminExtend"
    ADMIN_RENEW = "adminRenew"


class Status(StrEnum):
    """Where a schedule request stands (Graph's request status)."""

    PENDING_APPROVAL = "PendingApproval"
    GRANTED = "Granted"
    DENIED = "Denied"
    CANCELED = "Canceled"
    TIMED_OUT = "TimedOut"
    PROVISIONED = "Provisioned"
    REVOKED = "Revoked"
    FAILED = "Failed"


class ScheduleKind(StrEnum):
    """Eligible to activate, or active now. These are also the words `assign` takes."""

    ELIGIBLE = "eligible"
    ACTIVE = "active"


class MemberType(StrEnum):
    """How an active schedule came about: given by an admin, or activated from an eligibility."""

    ASSIGNED = "Assigned"
    ACTIVATED = "Activated"


class ScheduleState(StrEnum):
    SCHEDULED = "Scheduled"  # starts later
    ACTIVE = "Active"
    EXPIRED = "Expired"
    REMOVED = "Removed"  # ended early: deactivated or removed by an admin


class ReviewResult(StrEnum):
    """An approver's decision on one approval step (Graph's approvalStep reviewResult)."""

    APPROVE = "Approve"
    DENY = "Deny"


class OutboxStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a worker until its lease (next_attempt_at) runs out
    SENT = "sent"
    FANNED = "fanned"  # a transport '*' row, replaced by one row per transport that reaches
    UNREACHABLE = "unreachable"  # no running transport reaches the recipient
    FAILED = "failed"  # gave up after the last attempt


class TimerStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # claimed by a worker
    DONE = "done"
    CANCELED = "canceled"  # the work it stood for no longer applies


class ReviewStatus(StrEnum):
    """Where an access review instance stands (Graph's accessReviewInstance status)."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"  # ended; results recorded but not applied (auto_apply off)
    APPLIED = "Applied"  # ended and its results carried out


class ReviewDecision(StrEnum):
    """A reviewer's answer on one item (Graph's accessReviewInstanceDecisionItem decision)."""

    APPROVE = "Approve"
    DENY = "Deny"
    DONT_KNOW = "DontKnow"
    NOT_REVIEWED = "NotReviewed"


class ReviewOutcome(StrEnum):
    """What the end of a review does with an item's assignment."""

    KEEP = "Keep"
    REMOVE = "Remove"


class GrantStatus(StrEnum):
    """Where one target of one activation stands in the system that holds the real access
    (Graph's words where it has them). A revoke moves a row on from Provisioned."""

    PENDING_PROVISIONING = "PendingProvisioning"
    PROVISIONED = "Provisioned"
    # Provisioned, and the activation's end has moved: the target is to carry the new end.
    PENDING_EXTENSION = "PendingExtension"
    FAILED = "Failed"  # gave up: a permanent error, or too many attempts (see `phase`)
    PENDING_REVOKE = "PendingRevoke"
    REVOKED = "Revoked"
    CANCELED = "Canceled"  # ended before the grant was ever tried: nothing to take back
