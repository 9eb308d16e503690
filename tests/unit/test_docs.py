"""The docs keep up with the code: every variable the code reads is documented and in
app.json, README links to every page of docs/, and nothing points outside the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def variables_read() -> set[str]:
    return set(re.findall(r'get\("([A-Z][A-Z0-9_]+)"\)', (ROOT / "bot/config.py").read_text()))


def test_every_variable_is_documented_and_in_app_json():
    names = variables_read()
    assert {"DATABASE_URL", "LOG_FORMAT", "SLACK_BOT_TOKEN"} <= names
    documented = (DOCS / "configuration.md").read_text()
    app = json.loads((ROOT / "app.json").read_text())["env"]
    assert [n for n in sorted(names) if f"`{n}`" not in documented] == []
    assert sorted(names - set(app)) == []


def test_readme_links_every_doc_and_links_resolve():
    readme = (ROOT / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, page.name
    for source in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", source.read_text()):
            assert (source.parent / target).resolve().is_file(), (source.name, target)


def test_nothing_refers_outside_the_repository():
    files = [
        p
        for p in ROOT.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".md", ".yaml", ".yml", ".toml"}
        and not any(
            part.startswith(".") or part == "node_modules" for part in p.relative_to(ROOT).parts
        )
    ]
    offenders = [
        str(p.relative_to(ROOT))
        for p in files
        if re.search(r"DESIGN\.md|\.\./shared", p.read_text(errors="ignore"))
        and p.name != "test_docs.py"
    ]
    assert offenders == []
