"""The README's lab table: every built-in lab, once, under the heading of its lesson."""

from __future__ import annotations

import re
from pathlib import Path

from labs.lab import LESSONS
from labs.registry import discover

README = Path(__file__).resolve().parents[1] / "README.md"


def _table() -> dict[str, str]:
    """{lab: lesson heading} from README's "The labs" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### The labs"):]
    section = section[:section.index("\n### ", 5)]
    where, heading = {}, ""
    for line in section.splitlines():
        if line.startswith("#### "):
            heading = line[5:].strip()
        m = re.match(r"\| ((?:`[a-z0-9-]+`(?:, )?)+) \|", line)
        for name in re.findall(r"`([a-z0-9-]+)`", m.group(1)) if m else ():
            assert name not in where, f"{name} is listed twice"
            where[name] = heading
    return where


def test_every_builtin_lab_is_listed_under_its_lesson():
    where = _table()
    builtin = {s.name: s for s in discover().select() if s.builtin}
    missing, unknown = set(builtin) - set(where), set(where) - set(builtin)
    assert not missing and not unknown, f"missing: {sorted(missing)}, unknown: {sorted(unknown)}"
    for name, spec in builtin.items():
        assert where[name] == LESSONS[spec.load().lesson], name


def test_lessons_appear_in_teaching_order():
    order = list(dict.fromkeys(_table().values()))
    titles = list(LESSONS.values())
    assert order == sorted(order, key=titles.index)
