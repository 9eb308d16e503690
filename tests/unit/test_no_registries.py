"""Which command runs what is decided by the composition root, never by what ran before: no
module holds a mutable registry of chat commands, and each table is built fresh."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import MutableMapping, MutableSequence, MutableSet
from typing import get_args

import pytest

import bot
import handlers
from bot.config import Settings
from bot.runtime import Runtime
from handlers import commands as c
from handlers.chat import command_table
from handlers.digest.report import DigestOptions

COMMAND_TYPES = set(get_args(c.Command))


def _modules() -> list[object]:
    found = []
    for package in (handlers, bot):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            found.append(importlib.import_module(info.name))
    return found


def _mentions_commands(value: object) -> bool:
    keys = value.keys() if isinstance(value, MutableMapping) else value
    return any(isinstance(k, type) and k in COMMAND_TYPES for k in keys)  # type: ignore[union-attr]


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)  # type: ignore[attr-defined]
def test_no_module_holds_a_mutable_registry_of_commands(module: object):
    for name, value in vars(module).items():
        if isinstance(value, MutableMapping | MutableSequence | MutableSet):
            assert not _mentions_commands(value), (
                f"{module.__name__}.{name} is a mutable "
                "registry of commands; build it in command_table() instead"
            )  # type: ignore[attr-defined]
    assert not hasattr(module, "register_command")


def test_a_command_table_is_read_only_complete_and_new_each_time():
    table = command_table(digest=DigestOptions())
    assert set(table) == COMMAND_TYPES
    with pytest.raises(TypeError):
        table[c.Help] = table[c.Roles]  # type: ignore[index]
    assert command_table(digest=DigestOptions()) is not table


async def test_two_runtimes_keep_their_own_digest_preview(tmp_path):
    tokyo = Runtime.build(
        Settings.from_env(
            {"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "PIM_TIMEZONE": "Asia/Tokyo"}
        )
    )
    utc = Runtime.build(Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}))
    try:
        assert tokyo.commands[c.Digest] is not utc.commands[c.Digest]
        assert tokyo.chat().commands is tokyo.commands
        # the closure each runtime built holds its own options
        # (through the runtime's metrics wrapper, to the runner the engine built)
        runner = inspect.unwrap(tokyo.commands[c.Digest])
        cells = [cell.cell_contents for cell in runner.__closure__ or ()]
        assert any(isinstance(o, DigestOptions) and o.timezone == "Asia/Tokyo" for o in cells)
    finally:
        await tokyo.close()
        await utc.close()
