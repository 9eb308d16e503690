"""The scopes `serve` and `doctor` require are exactly the ones slack-manifest.yml asks for."""

from pathlib import Path

import yaml

from bot.slack.startup import SCOPES
from tests.slackfake.server import MANIFEST_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "slack-manifest.yml"


def test_required_scopes_are_the_manifests():
    declared = yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"]
    assert SCOPES == set(declared) == set(MANIFEST_SCOPES)
