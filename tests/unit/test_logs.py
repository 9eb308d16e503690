"""LOG_FORMAT=json: one JSON object a line, with the request id and the actor."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from bot.logs import make_handler, new_request, set_actor


def test_json_lines_carry_request_id_and_actor():
    out = io.StringIO()
    log = logging.getLogger("pim.test.logs")
    log.addHandler(make_handler("json", out))
    log.setLevel(logging.INFO)
    log.propagate = False

    async def request(rid: str, actor: str) -> None:
        new_request(rid)
        set_actor(actor)
        await asyncio.sleep(0)  # another request runs meanwhile: contexts do not mix
        log.info("approved %s", "R-7K2Q")

    async def both() -> None:
        await asyncio.gather(
            asyncio.create_task(request("r1", "carol@contoso.com")),
            asyncio.create_task(request("r2", "bob@contoso.com")),
        )

    asyncio.run(both())
    log.info("outside any request")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["request_id"], r["actor"], r["message"]) for r in records] == [
        ("r1", "carol@contoso.com", "approved R-7K2Q"),
        ("r2", "bob@contoso.com", "approved R-7K2Q"),
        ("", "", "outside any request"),
    ]
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "pim.test.logs"
    assert "time" in records[0]


def test_a_caller_request_id_is_kept_and_bounded():
    assert new_request("  abc-123 ") == "abc-123"
    assert len(new_request("x" * 500)) == 64
    assert len(new_request(None)) == 16
