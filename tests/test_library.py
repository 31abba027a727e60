"""docs/library.md's example runs as written: a call through the library, in this process."""

from __future__ import annotations

import re

import pytest

from .helpers.orga import REPO


def example_source() -> str:
    text = (REPO / "docs" / "library.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/library.md should hold one Python example"
    return blocks[0]


@pytest.mark.timeout(40)
async def test_the_library_example_makes_a_call() -> None:
    namespace: dict[str, object] = {"__name__": "library_example"}
    exec(compile(example_source(), "docs/library.md", "exec"), namespace)
    summary = await namespace["main"]()  # type: ignore[operator]
    assert summary["ms_to_connected"] is not None
    assert summary["packets_sent"] > 100 and summary["packets_received"] > 100
    assert 3.5 <= summary["seconds_played"] <= 4.5
    assert summary["concealed_pct"] < 5
    speakers = [who for who, _ in summary["conversation"]]
    assert "you" in speakers and "orga" in speakers, summary["conversation"]
