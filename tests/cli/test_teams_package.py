"""`pim-bot teams package` writes a zip Teams accepts: manifest, icons, our commands."""

from __future__ import annotations

import json
import struct
import zipfile

import pytest

from bot.cli import main
from handlers.grammar import USAGE

APP_ID = "0b5c7a1e-3f4d-4e6a-9c2b-8d7e6f5a4b3c"
LINKS = [
    "--website",
    "https://pim.contoso.com/",
    "--privacy-url",
    "https://pim.contoso.com/privacy",
    "--terms-url",
    "https://pim.contoso.com/terms",
]


def test_package_has_manifest_icons_and_commands(tmp_path, capsys):
    out = tmp_path / "pim.zip"
    assert main(["teams", "package", "--app-id", APP_ID, "-o", str(out), *LINKS]) == 0
    assert "upload it in Teams" in capsys.readouterr().out
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(zf.read("manifest.json"))
        sizes = {
            name: struct.unpack(">II", zf.read(name)[16:24])
            for name in ("color.png", "outline.png")
        }
    assert sizes == {"color.png": (192, 192), "outline.png": (32, 32)}
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert manifest["bots"][0]["scopes"] == ["personal"]
    commands = manifest["bots"][0]["commandLists"][0]["commands"]
    assert 0 < len(commands) <= 10  # Teams' limit per command list
    assert all(
        c["title"] in USAGE and len(c["title"]) <= 32 and len(c["description"]) <= 128
        for c in commands
    )


@pytest.mark.parametrize("app_id", ["nope", "", "1234"])
def test_bad_app_id_is_one_line(tmp_path, capsys, app_id):
    out = tmp_path / "pim.zip"
    assert main(["teams", "package", "--app-id", app_id, "-o", str(out), *LINKS]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "must be the bot's Microsoft App ID" in err
    assert not out.exists()


def test_links_are_the_organisations_own(tmp_path, capsys):
    """No default points at a page that is not the organisation's: the admin names them."""
    out = tmp_path / "pim.zip"
    with pytest.raises(SystemExit) as exit_:
        main(["teams", "package", "--app-id", APP_ID, "-o", str(out)])
    assert exit_.value.code == 2
    assert "--website" in capsys.readouterr().err and not out.exists()
    assert main(["teams", "package", "--app-id", APP_ID, "-o", str(out), *LINKS]) == 0
    with zipfile.ZipFile(out) as zf:
        developer = json.loads(zf.read("manifest.json"))["developer"]
    assert developer["privacyUrl"] == "https://pim.contoso.com/privacy"
    assert "github.com" not in json.dumps(developer)
