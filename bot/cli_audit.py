"""`pim-bot audit …`: export (once, or followed for a SIEM), verify, checkpoint."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncSession

from bot.runtime import Runtime
from storage.audit import VerifyResult, iter_events, verify_chain
from storage.audit_checkpoint import (
    Checkpoint,
    checkpoint_problem,
    current_checkpoint,
    parse_checkpoints,
)
from storage.models import AuditEvent

FIELDS = ["id", "at", "actor", "action", "target", "details", "prev_hash", "hash"]


class AuditUsageError(ValueError):
    """Bad arguments or files: a one-line message, exit 2."""


def add_audit_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="export|verify|checkpoint"
    )
    export = audit.add_parser("export", help="write every audit event")
    export.add_argument(
        "--format",
        choices=["csv", "json", "jsonl"],
        default=None,
        help="default json; --follow always writes JSON lines",
    )
    export.add_argument("-o", "--output", help="write to this file instead of stdout")
    export.add_argument(
        "--since-id",
        type=int,
        default=0,
        metavar="N",
        help="only events after event N (resume a stream where it stopped)",
    )
    export.add_argument(
        "--follow",
        action="store_true",
        help="keep running and write new events as JSON lines as they land",
    )
    export.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often --follow looks for new events (default 1)",
    )
    verify = audit.add_parser(
        "verify", help="prove no audit event was edited, removed or reordered"
    )
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="also prove the log still reaches every checkpoint in FILE",
    )
    audit.add_parser("checkpoint", help="print the head of the chain, to keep outside the database")


def check_arguments(args: argparse.Namespace) -> list[Checkpoint]:
    """Refuse bad arguments before touching the database; the checkpoints to verify."""
    if args.audit_command == "export":
        if args.follow and args.format not in (None, "jsonl"):
            raise AuditUsageError("--follow writes JSON lines; leave out --format or use jsonl")
        if args.since_id < 0:
            raise AuditUsageError("--since-id must be 0 or more")
        if not args.interval > 0:
            raise AuditUsageError("--interval must be positive")
    if args.audit_command != "verify" or not args.checkpoint:
        return []
    try:
        text = Path(args.checkpoint).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise AuditUsageError(f"cannot read {args.checkpoint}: {err.strerror}") from None
    found = parse_checkpoints(text)
    if not found:
        raise AuditUsageError(
            f"{args.checkpoint} holds no audit checkpoint (a line like "
            "'audit-checkpoint seq=N hash=… key=…' from "
            "`pim-bot audit checkpoint` or a digest)"
        )
    return found


async def run_audit(
    args: argparse.Namespace, runtime: Runtime, checkpoints: list[Checkpoint]
) -> int:
    if args.audit_command == "export" and args.follow:
        with _output(args.output) as out:
            await _follow(runtime, out, after_id=args.since_id, interval=args.interval)
        return 0
    async with runtime.uow.transaction() as s:
        if args.audit_command == "checkpoint":
            print((await current_checkpoint(s)).line())
            return 0
        if args.audit_command == "verify":
            return await _verify(s, checkpoints, keyed=runtime.settings.audit_key is not None)
        with _output(args.output) as out:
            await _export(s, out, args.format or "json", after_id=args.since_id)
    return 0


async def _verify(session: AsyncSession, checkpoints: list[Checkpoint], *, keyed: bool) -> int:
    result = await verify_chain(session)
    if result.needs_key and not keyed:
        raise AuditUsageError(
            f"audit events from {result.broken_id} on are keyed (key id "
            f"{result.needs_key}): set PIM_AUDIT_KEY to verify them"
        )
    if not result.ok:
        reason = result.reason
        if result.needs_key:
            reason = (
                f"keyed with key id {result.needs_key}, not with PIM_AUDIT_KEY: "
                "a forged row, or the wrong key"
            )
        print(
            f"BROKEN at event {result.broken_id}: {reason} "
            f"({result.checked} events before it are intact)."
        )
        return 1
    for checkpoint in checkpoints:
        if (problem := await checkpoint_problem(session, checkpoint)) is not None:
            print(f"BROKEN: {problem}.")
            return 1
    print(_ok_line(result, checkpoints, keyed=keyed))
    return 0


def _ok_line(result: VerifyResult, checkpoints: list[Checkpoint], *, keyed: bool) -> str:
    if result.checked == 0 or (result.first_keyed is None and not keyed):
        how = ""
    elif result.first_keyed is None:
        # Worth saying: a log rewritten unkeyed from the start would look like this too.
        how = "; no event is keyed yet (the next one will be)"
    elif result.first_keyed == 1:
        how = " and keyed"
    else:
        how = f"; keyed from event {result.first_keyed} on (events before it predate PIM_AUDIT_KEY)"
    reach = ""
    if checkpoints:
        newest = max(c.seq for c in checkpoints)
        plural = "s" if len(checkpoints) > 1 else ""
        reach = f"; it reaches the checkpoint{plural} (newest at event {newest})"
    return f"OK: {result.checked} audit events, chain intact{how}{reach}."


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """stdout, or a file opened for the duration of the command."""
    if not path:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as out:
        yield out


def _record(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "details": e.details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


async def _export(session: AsyncSession, out: TextIO, fmt: str, *, after_id: int) -> None:
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(FIELDS)
    elif fmt == "json":
        out.write("[")
    first = True
    async for e in iter_events(session, after_id=after_id):
        record = _record(e)
        if writer:
            writer.writerow(
                [json.dumps(v, sort_keys=True) if k == "details" else v for k, v in record.items()]
            )
        elif fmt == "jsonl":
            out.write(json.dumps(record, sort_keys=True) + "\n")
        else:
            out.write(("\n  " if first else ",\n  ") + json.dumps(record, sort_keys=True))
        first = False
    if fmt == "json":
        out.write("\n]\n" if not first else "]\n")


async def _follow(runtime: Runtime, out: TextIO, *, after_id: int, interval: float) -> None:
    """Poll for events after the last one written, until SIGTERM or Ctrl-C. Ids are handed
    out under the append lock, so a later id never commits before an earlier one: polling
    `id > last` misses nothing."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C still ends asyncio.run
            pass
    last = after_id
    while not stop.is_set():
        async with runtime.uow.transaction() as s:
            async for e in iter_events(s, after_id=last):
                out.write(json.dumps(_record(e), sort_keys=True) + "\n")
                last = e.id
        out.flush()
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
