"""Configuration from the environment (names equal the keys in app.json)."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from handlers.durations import DurationError, parse_duration
from storage.db import DatabaseUrlError, normalize_url


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    policy_file: str | None = None
    policy_max_bytes: int = 5_000_000
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str | None = None
    slack_team_id: str | None = None  # the one workspace served; else auth.test's team
    microsoft_app_id: str | None = None
    microsoft_app_password: str | None = field(default=None, repr=False)
    microsoft_app_type: str | None = None
    microsoft_app_tenant_id: str | None = None
    microsoft_login_url: str = "https://login.microsoftonline.com"  # sovereign clouds differ
    teams_allow_unauthenticated: bool = False
    teams_tenants: tuple[str, ...] = ()  # PIM_TEAMS_TENANTS, lower-cased (ids are GUIDs)
    digest_cron: str = "0 9 * * mon"
    timezone: str = "UTC"
    sweep_seconds: float = 15.0
    outbox_concurrency: int = 64
    port: int = 3000
    log_level: str = "INFO"
    reconcile_interval: timedelta = timedelta(minutes=15)  # PIM_RECONCILE_INTERVAL
    directory_sync_interval: timedelta = timedelta(hours=1)  # PIM_DIRECTORY_SYNC_INTERVAL
    log_format: str = "plain"  # LOG_FORMAT: plain, or json for log pipelines
    # Keys the audit hash chain (HMAC-SHA256). A secret: never logged, never stored.
    audit_key: str | None = field(default=None, repr=False)
    # Signs grant webhooks (Standard Webhooks, `whsec_…`). A secret: never logged.
    webhook_secret: str | None = field(default=None, repr=False)
    # How long a claimed grant call may take before another worker may retry it (a worker
    # that died mid-call is noticed after this). Longer than any provider's timeout.
    grant_lease_seconds: float = 120.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        try:
            database_url = normalize_url(get("DATABASE_URL"))
        except DatabaseUrlError as err:
            raise ConfigError(str(err)) from None
        timezone = get("PIM_TIMEZONE") or "UTC"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"PIM_TIMEZONE {timezone!r} is not a time zone name") from None
        cron = get("PIM_DIGEST_CRON") or "0 9 * * mon"
        try:
            CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
        except ValueError as err:
            raise ConfigError(f"PIM_DIGEST_CRON {cron!r} is not a crontab line: {err}") from None
        return cls(
            database_url=database_url,
            policy_file=get("PIM_POLICY"),
            policy_max_bytes=int(
                _positive_float(get("PIM_POLICY_MAX_BYTES"), "PIM_POLICY_MAX_BYTES", 5_000_000)
            ),
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_api_url=get("SLACK_API_URL"),
            slack_team_id=get("SLACK_TEAM_ID"),
            microsoft_app_id=get("MICROSOFT_APP_ID"),
            microsoft_app_password=get("MICROSOFT_APP_PASSWORD"),
            microsoft_app_type=get("MICROSOFT_APP_TYPE"),
            microsoft_app_tenant_id=get("MICROSOFT_APP_TENANT_ID"),
            microsoft_login_url=get("MICROSOFT_LOGIN_URL") or "https://login.microsoftonline.com",
            teams_allow_unauthenticated=(get("PIM_TEAMS_ALLOW_UNAUTHENTICATED") or "").lower()
            in ("1", "true", "yes"),
            teams_tenants=tuple(
                t.strip().lower() for t in (get("PIM_TEAMS_TENANTS") or "").split(",") if t.strip()
            ),
            digest_cron=cron,
            timezone=timezone,
            sweep_seconds=_positive_float(get("PIM_SWEEP_SECONDS"), "PIM_SWEEP_SECONDS", 15.0),
            outbox_concurrency=int(
                _positive_float(get("PIM_OUTBOX_CONCURRENCY"), "PIM_OUTBOX_CONCURRENCY", 64)
            ),
            port=int(_positive_float(get("PORT"), "PORT", 3000)),
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            log_format=_log_format(get("LOG_FORMAT")),
            audit_key=_audit_key(get("PIM_AUDIT_KEY")),
            webhook_secret=_webhook_secret(get("PIM_WEBHOOK_SECRET")),
            grant_lease_seconds=_positive_float(
                get("PIM_GRANT_LEASE_SECONDS"), "PIM_GRANT_LEASE_SECONDS", 120.0
            ),
            reconcile_interval=_interval(
                get("PIM_RECONCILE_INTERVAL"), "PIM_RECONCILE_INTERVAL", timedelta(minutes=15)
            ),
            directory_sync_interval=_interval(
                get("PIM_DIRECTORY_SYNC_INTERVAL"),
                "PIM_DIRECTORY_SYNC_INTERVAL",
                timedelta(hours=1),
            ),
        )


MIN_AUDIT_KEY = 16
LOG_FORMATS = ("plain", "json")


def _log_format(raw: str | None) -> str:
    value = (raw or "plain").lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be plain or json, not {raw!r}")
    return value


def _audit_key(raw: str | None) -> str | None:
    # The message never repeats the value: it is a secret even when it is a bad one.
    if raw is not None and len(raw) < MIN_AUDIT_KEY:
        raise ConfigError(
            f"PIM_AUDIT_KEY must be at least {MIN_AUDIT_KEY} characters "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return raw


def _webhook_secret(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        body = raw.removeprefix("whsec_")
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not raw.startswith("whsec_") or len(key) < 16:
        raise ConfigError(
            "PIM_WEBHOOK_SECRET must be whsec_ followed by at least 16 bytes in "
            "base64 (e.g. whsec_$(openssl rand -base64 32))"
        )
    return raw


def _interval(raw: str | None, name: str, default: timedelta) -> timedelta:
    if raw is None:
        return default
    try:
        value = parse_duration(raw)
    except DurationError as err:
        raise ConfigError(f"{name}: {err}") from None
    if value < timedelta(seconds=1):
        raise ConfigError(f"{name} must be at least 1s")
    return value


def _positive_float(raw: str | None, name: str, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value
