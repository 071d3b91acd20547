"""The project's own documents point at files that exist, and at nothing outside the project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "examples" / "plugin" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{doc.name} links to {target}, which does not exist"


def test_roadmap_mentions_lead_to_the_roadmap():
    assert (ROOT / "docs" / "roadmap.md").is_file()
    readme = (ROOT / "README.md").read_text()
    lines = [ln for ln in readme.splitlines() if "roadmap" in ln.lower()]
    assert lines and all("docs/roadmap.md" in ln for ln in lines), lines


def test_no_document_cites_a_file_outside_the_project():
    for doc in DOCS:
        assert "FACTS.md" not in doc.read_text(), doc.name
