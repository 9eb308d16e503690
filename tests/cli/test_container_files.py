"""The Dockerfile and compose.yaml keep the promises that running them for real showed they
need: the unprivileged user can write where the default database goes, the health check asks
/healthz, PostgreSQL is called healthy only once it takes TCP connections, the policy is
mounted from the repository and secrets come from a .env file that git and the build ignore.
(test_image_contents.py runs the image's contents; docs/operations.md has the real build.)"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import PurePosixPath

import yaml
from clihelp import ROOT


def _final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    instructions = [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    pairs = (p.split("=", 1) for word, args in stage if word == "ENV" for p in shlex.split(args))
    return dict(pairs)


def test_the_image_runs_unprivileged_and_can_write_its_default_database():
    stage = _final_stage()
    runs = " && ".join(args for word, args in stage if word == "RUN")
    (user,) = [args for word, args in stage if word == "USER"]
    assert user.isdigit() and int(user) != 0
    created = re.search(rf"useradd [^&]*--uid {user} [^&]*?(\S+)\s*(?:&&|$)", runs)
    assert created, "the USER is created with that uid"
    url = _env(stage)["DATABASE_URL"]
    assert url.startswith("sqlite:////")
    data_dir = str(PurePosixPath(url.removeprefix("sqlite:///")).parent)
    name = created.group(1)
    assert re.search(rf"install -d -o {name} -g {name} {re.escape(data_dir)}(?: |$)", runs)


def test_the_image_checks_healthz_and_serves():
    stage = dict(_final_stage())
    assert "/healthz" in stage["HEALTHCHECK"] and "PORT" in stage["HEALTHCHECK"]
    assert json.loads(stage["CMD"]) == ["pim-bot", "serve"]


def test_compose_waits_for_a_postgresql_that_takes_tcp_connections():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    check = " ".join(services["db"]["healthcheck"]["test"])
    assert "pg_isready" in check and "-h 127.0.0.1" in check
    assert services["pim-bot"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["pim-bot"]["environment"]["DATABASE_URL"].startswith("postgresql://")


def test_compose_mounts_the_example_policy_and_reads_secrets_from_an_ignored_env_file():
    bot = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["pim-bot"]
    mounts = dict(v.removesuffix(":ro").split(":") for v in bot["volumes"])
    source = {target: src for src, target in mounts.items()}[bot["environment"]["PIM_POLICY"]]
    assert (ROOT / source).is_file()
    assert bot["env_file"] == [{"path": ".env", "required": False}]
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    # The build context is an allow-list: everything is ignored, then a few paths let in.
    assert "**" in ignore and not any(line.startswith("!.env") for line in ignore)
