"""Typed engine errors. The message is what the person in chat reads: say what to do next."""

from __future__ import annotations


class PimError(Exception):
    """Base of every refusal the engine gives. Transports show str(err) privately."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PimError):
    code = "not_found"


class UnknownPrincipal(NotFound):
    code = "unknown_principal"


class UnknownRole(NotFound):
    code = "unknown_role"


class UnknownRequest(NotFound):
    code = "unknown_request"


class NotEligible(PimError):
    code = "not_eligible"


class DurationOutOfRange(PimError):
    code = "duration_out_of_range"


class JustificationRequired(PimError):
    code = "justification_required"


class TicketRequired(PimError):
    code = "ticket_required"


class AlreadyActive(PimError):
    code = "already_active"


class AlreadyPending(PimError):
    code = "already_pending"


class NotAnApprover(PimError):
    code = "not_an_approver"


class SelfApprovalForbidden(PimError):
    code = "self_approval_forbidden"


class AlreadyDecided(PimError):
    code = "already_decided"


class NotActive(PimError):
    code = "not_active"


class TooSoonToDeactivate(PimError):
    code = "too_soon_to_deactivate"


class Forbidden(PimError):
    code = "forbidden"


class InvalidInput(PimError):
    code = "invalid_input"


class PolicyError(PimError):
    code = "policy_error"


class NotSetUp(PimError):
    """The person in chat matches no principal: every transport refuses with this text."""

    code = "not_set_up"

    def __init__(self) -> None:
        super().__init__(
            "You are not set up in pim-bot yet. Ask a pim-bot admin to add you to the policy."
        )


class Busy(PimError):
    """The database did not let a chat interaction commit in time. Its transaction was rolled
    back, so the answer can promise that nothing changed."""

    code = "busy"

    def __init__(self) -> None:
        super().__init__("Nothing was changed; pim-bot is busy, try again in a moment.")


class Slow(PimError):
    """A chat interaction ran past its time budget for another reason than a database wait
    (the machine is overloaded). Its outcome is not known yet, so the answer promises none."""

    code = "slow"

    def __init__(self) -> None:
        super().__init__(
            "pim-bot is slow to answer right now; look at `requests` or `roles` "
            "in a moment to see whether this went through."
        )
