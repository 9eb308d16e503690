"""Role settings (the PIM policy of one role), with Microsoft Entra PIM's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from typing import Any

from handlers.durations import DurationError, format_duration, parse_duration

MAX_ACTIVATION = timedelta(hours=24)

_DURATION_FIELDS = (
    "max_duration",
    "min_duration",
    "approval_timeout",
    "expiry_warning",
    "default_duration",
    "min_active_before_deactivate",
)
_BOOL_FIELDS = (
    "require_justification",
    "require_ticket",
    "require_approval",
    "approver_justification",
    "allow_permanent_eligible",
    "allow_permanent_active",
)


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RoleSettings:
    max_duration: timedelta = timedelta(hours=8)
    min_duration: timedelta = timedelta(minutes=5)
    require_justification: bool = True
    require_ticket: bool = False
    require_approval: bool = False
    approvers: tuple[str, ...] = ()
    approver_justification: bool = True
    approval_timeout: timedelta = timedelta(hours=24)
    expiry_warning: timedelta = timedelta(minutes=15)
    default_duration: timedelta = timedelta(hours=1)
    min_active_before_deactivate: timedelta = timedelta(minutes=5)
    approval_channel: dict[str, str] = field(default_factory=dict)
    allow_permanent_eligible: bool = True
    allow_permanent_active: bool = True

    @property
    def effective_default(self) -> timedelta:
        return min(max(self.default_duration, self.min_duration), self.max_duration)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> RoleSettings:
        """Build from a policy file or a stored row; raise SettingsError naming the field."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SettingsError(
                f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        values: dict[str, Any] = {}
        for name in _DURATION_FIELDS:
            if name in raw:
                values[name] = _duration(name, raw[name])
        for name in _BOOL_FIELDS:
            if name in raw:
                if not isinstance(raw[name], bool):
                    raise SettingsError(f"{name} must be true or false, not {raw[name]!r}")
                values[name] = raw[name]
        if "approvers" in raw:
            approvers = raw["approvers"] or []
            if not isinstance(approvers, list) or not all(
                isinstance(a, str) and "@" in a for a in approvers
            ):
                raise SettingsError("approvers must be a list of email addresses")
            values["approvers"] = tuple(a.strip().lower() for a in approvers)
        if "approval_channel" in raw:
            channel = raw["approval_channel"] or {}
            if (
                not isinstance(channel, dict)
                or not set(channel) <= {"slack", "teams"}
                or not all(isinstance(v, str) and v for v in channel.values())
            ):
                raise SettingsError(
                    "approval_channel must look like {slack: C0123ABC, teams: CONVERSATION_ID}"
                )
            values["approval_channel"] = dict(channel)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.max_duration > MAX_ACTIVATION:
            raise SettingsError(
                f"max_duration {format_duration(self.max_duration)} is over the 24h upper bound"
            )
        if self.min_duration > self.max_duration:
            raise SettingsError(
                f"min_duration {format_duration(self.min_duration)} is longer than "
                f"max_duration {format_duration(self.max_duration)}"
            )

    def to_mapping(self) -> dict[str, Any]:
        """JSON-ready form, durations in whole seconds."""
        out = asdict(self)
        for name in _DURATION_FIELDS:
            out[name] = int(getattr(self, name).total_seconds())
        out["approvers"] = list(self.approvers)
        return out

    def to_policy(self) -> dict[str, Any]:
        """Only what differs from the defaults, durations written for people (policy export)."""
        default = RoleSettings()
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name):
                continue
            if isinstance(value, timedelta):
                out[f.name] = format_duration(value)
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out


def _duration(name: str, value: Any) -> timedelta:
    if isinstance(value, bool):
        raise SettingsError(f"{name} must be a duration such as 8h, not {value!r}")
    if isinstance(value, int):
        seconds = value
        if seconds <= 0:
            raise SettingsError(f"{name} must be positive")
        return timedelta(seconds=seconds)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as err:
            raise SettingsError(f"{name}: {err}") from None
    raise SettingsError(f"{name} must be a duration such as 8h, not {value!r}")
