"""`pim-bot review start|end|export ID`: open an access review now, close it now, and write
its evidence for auditors."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

from bot.runtime import Runtime
from handlers.reviews.apply import end_review
from handlers.reviews.export import FIELDS, export_review
from handlers.reviews.open import start_review


def add_review_parser(sub: Any) -> None:
    review = sub.add_parser("review", help="access reviews").add_subparsers(
        dest="review_command", required=True
    )
    start = review.add_parser("start", help="open an instance of a review now")
    start.add_argument("id", help="the review's id in the policy file")
    end = review.add_parser("end", help="close the review's open instance now and apply it")
    end.add_argument("id")
    export = review.add_parser("export", help="write a review's decisions (evidence)")
    export.add_argument("id")
    export.add_argument("--instance", type=int, metavar="N", help="default: the latest")
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("-o", "--output", help="write to this file instead of stdout")


async def run_review(args: argparse.Namespace, runtime: Runtime, actor: str) -> int:
    if args.review_command == "start":
        print(await start_review(runtime.uow, runtime.clock, actor=actor, review_id=args.id))
    elif args.review_command == "end":
        print(
            await end_review(
                runtime.uow,
                runtime.clock,
                actor=actor,
                review_id=args.id,
                on_removed=runtime.review_removal_hook,
            )
        )
    else:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                await _export(args, runtime, out)
        else:
            await _export(args, runtime, sys.stdout)
    return 0


async def _export(args: argparse.Namespace, runtime: Runtime, out: TextIO) -> None:
    rows = export_review(runtime.uow, review_id=args.id, number=args.instance)
    if args.format == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        async for row in rows:
            writer.writerow(row)
        return
    out.write("[")
    first = True
    async for row in rows:
        out.write(("\n  " if first else ",\n  ") + json.dumps(row, ensure_ascii=False))
        first = False
    out.write("\n]\n" if not first else "]\n")
