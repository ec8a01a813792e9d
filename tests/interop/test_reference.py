"""The build of the reference tools: pinned, cached, and loud when it cannot build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop import reference
from tests.interop.reference import MIN_GO, TOOLS, Built, build_tools, built_version, modern_go


def test_every_tool_is_the_pinned_version(go_tools: Built) -> None:
    go = modern_go(MIN_GO)
    assert go is not None
    for name, tool in TOOLS.items():
        assert built_version(go, go_tools.paths[name], tool.module) == tool.version, name
    assert not any(tool.version.endswith(("latest", "master", "main")) for tool in TOOLS.values())


def test_a_tool_that_cannot_build_fails_with_gos_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No module proxy (GOPROXY=off) and an empty cache: the first tool fails, and says why."""
    go = modern_go(MIN_GO)
    assert go is not None
    monkeypatch.setattr(reference, "BUILD", tmp_path / "interop-go")
    monkeypatch.setenv("GOPROXY", "off")
    with pytest.raises(AssertionError) as failed:
        build_tools(go)
    message = str(failed.value)
    assert message.startswith("go install filippo.io/torchwood/cmd/litewitness@v0.9.0 failed:")
    assert "GOPROXY=off" in message
