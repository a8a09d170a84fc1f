"""The READMEs stay user guides (issue 24): every package README is at most 250 lines, measurements and their
history live in ``docs/evidence/<name>.md`` (current numbers first, history below a ``---`` rule), every
evidence file is linked from a README, and every relative link in a README — evidence links included, with
their ``#heading`` anchors — resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVIDENCE = ROOT / "docs" / "evidence"
PACKAGE_READMES = sorted(ROOT.glob("packages/*/README.md"))
READMES = [ROOT / "README.md", *PACKAGE_READMES]
MAX_LINES = 250

LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _outside_code(text: str) -> list[str]:
    """The lines of a markdown text that are not inside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchors(md: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered ``-1``, ``-2``, …"""
    seen: dict[str, int] = {}
    out = set()
    for line in _outside_code(md.read_text()):
        m = HEADING.match(line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(2).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def local_links(md: Path) -> list[str]:
    """Relative link targets in a markdown file (no URLs, no same-page anchors), outside code blocks."""
    targets = []
    for line in _outside_code(md.read_text()):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            targets.append(target)
    return targets


def test_there_are_package_readmes_and_evidence() -> None:
    assert len(PACKAGE_READMES) >= 5, f"found only {[_rel(p) for p in PACKAGE_READMES]}"
    assert sorted(EVIDENCE.glob("*.md")), f"{_rel(EVIDENCE)} holds no evidence files"


@pytest.mark.parametrize("readme", PACKAGE_READMES, ids=_rel)
def test_package_readme_is_short(readme: Path) -> None:
    lines = len(readme.read_text().splitlines())
    assert lines <= MAX_LINES, (
        f"{_rel(readme)}: {lines} lines (limit {MAX_LINES}); move dated measurements, per-seed tables and "
        f"histories verbatim to docs/evidence/{readme.parent.name}.md and link it"
    )


@pytest.mark.parametrize("readme", READMES, ids=_rel)
def test_readme_links_resolve(readme: Path) -> None:
    broken = []
    for target in local_links(readme):
        path, _, anchor = target.partition("#")
        dest = (readme.parent / path).resolve()
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    assert not broken, f"{_rel(readme)}: broken links: {broken}; fix the path or the heading"


def test_evidence_links_point_into_docs_evidence() -> None:
    """Links that name docs/evidence must land in the repository's docs/evidence folder."""
    wrong = []
    for readme in READMES:
        for target in local_links(readme):
            path = target.partition("#")[0]
            if "docs/evidence/" in path and (readme.parent / path).resolve().parent != EVIDENCE.resolve():
                wrong.append(f"{_rel(readme)}: {target}")
    assert not wrong, f"evidence links outside {_rel(EVIDENCE)}: {wrong}"


@pytest.mark.parametrize("evidence", sorted(EVIDENCE.glob("*.md")), ids=_rel)
def test_evidence_file_is_linked_and_has_history_rule(evidence: Path) -> None:
    linked = {
        (readme.parent / t.partition("#")[0]).resolve() for readme in READMES for t in local_links(readme)
    }
    assert evidence.resolve() in linked, f"{_rel(evidence)} is not linked from any README; link it"
    assert "---" in (line.strip() for line in _outside_code(evidence.read_text())), (
        f"{_rel(evidence)}: no '---' rule; put the current numbers first and the history below a '---' line"
    )
