"""House rules for the bundled specs."""

from __future__ import annotations

import pytest

from engine.compiler.merge import SPECS_DIR

SPECS = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SPECS)
def test_spec_opens_with_what_paper_and_command(name):
    lines = (SPECS_DIR / f"{name}.yaml").read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = " ".join(header)
    assert header, f"{name}.yaml does not open with a comment"
    assert "engine build" in text, f"{name}.yaml's header does not say how to build it"
    assert any(str(year) in text for year in range(1989, 2030)), f"{name}.yaml cites no paper year"
