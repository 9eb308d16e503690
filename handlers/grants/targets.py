"""A role's grant targets as stored (plain JSON on the role and on each grant row) and as
people read them."""

from __future__ import annotations

from typing import Any

from handlers.grants.provider import TARGET_KINDS, Target

# What a user reads on their card: "active in Entra", "provisioning… (Azure)".
PLACE = {
    "entra_role": "Entra",
    "entra_group": "Entra (group)",
    "azure_role": "Azure",
    "slack_usergroup": "Slack",
    "webhook": "webhook",
}


def to_json(target: Target) -> dict[str, Any]:
    """The policy file's own spelling, so export writes back what was read."""
    out: dict[str, Any] = {target.kind: target.ref}
    for key in ("scope", "access", "enforce"):
        value = getattr(target, key)
        if value is not None:
            out[key] = value
    return out


def from_json(raw: dict[str, Any]) -> Target:
    kind = next(k for k in TARGET_KINDS if k in raw)
    return Target(
        kind=kind,
        ref=str(raw[kind]),
        scope=raw.get("scope"),
        access=raw.get("access"),
        enforce=raw.get("enforce"),
    )


def targets_of(stored: list[dict[str, Any]] | None) -> list[Target]:
    return [from_json(raw) for raw in stored or ()]


def describe(target: Target) -> str:
    """One line, e.g. `entra_role 62e9… at /`."""
    text = f"{target.kind} {target.ref}"
    if target.scope:
        text += f" at {target.scope}"
    if target.access:
        text += f" ({target.access})"
    if target.enforce:
        text += f" enforce:{target.enforce}"
    return text
