"""Real components the suite talks to, and the switch that makes their absence fatal in CI.

Locally a test whose component is missing is skipped with the reason; with ``CI=true`` the same
test fails instead, so a green CI run means every component was really exercised.
"""

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(component: str, available: bool, hint: str = "") -> None:
    """Skip (locally) or fail (in CI) the calling test when ``component`` is not available."""
    if available:
        return
    message = f"{component} is not available{': ' + hint if hint else ''}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: components must be present, see .ci/run)")
    pytest.skip(message)


def require_program(name: str, hint: str = "") -> str:
    """Return the path of program ``name`` on PATH, or skip/fail as :func:`require` does."""
    path = shutil.which(name)
    require(name, path is not None, hint)
    assert path is not None
    return path
