"""A value recorded under an older fingerprint scheme (before nbgov read a masked array's
mask, a DatetimeIndex's freq...) is not called different by a newer nbgov's replay: it
cannot be compared, and says why. Values that still match are reproduced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage import recorder
from nbgov.lineage.fingerprint import SCHEME
from nbgov.lineage.placement import Placement
from nbgov.lineage.record import ExecutionRecord, SessionInfo
from nbgov.replay import compare
from tests.test_reviewer_output import _execution, _fp


def _step(then: str, now: str, fingerprints: int | None) -> compare.Comparison:
    original = ExecutionRecord.from_json(_execution(1, "x = f()", writes=[
        {"name": "x", "fingerprint": _fp(then), "mutated": False}]))
    again = ExecutionRecord.from_json(_execution(1, "x = f()", writes=[
        {"name": "x", "fingerprint": _fp(now), "mutated": False}]))
    context = compare.StepContext(Placement(None, Path.cwd()), fingerprints=fingerprints)
    return compare.compare_step(original, again, "ok", None, None, [], compare.Upstream(), context)


def test_a_value_that_differs_under_another_scheme_cannot_be_compared() -> None:
    for older in (None, SCHEME - 1):
        verdict = _step("1", "2", older)
        assert not verdict.causes and not verdict.changed
        (why,) = verdict.unverifiable
        assert why.startswith("`x`: recorded with fingerprint ") and f"hashes with scheme {SCHEME}" in why


def test_the_same_scheme_still_tells_a_difference_and_a_match_is_a_match() -> None:
    differs = _step("1", "2", SCHEME)
    assert differs.changed == ["x"] and differs.causes and not differs.unverifiable
    for fingerprints in (None, SCHEME):
        same = _step("1", "1", fingerprints)
        assert not same.causes and not same.changed and not same.unverifiable


def test_a_session_says_which_scheme_it_hashed_with(tmp_path: Path) -> None:
    shell: Any = InteractiveShell()
    shell.user_ns["__session__"] = str(tmp_path / "n.ipynb")
    rec = recorder.install(shell)
    try:
        shell.run_cell("x = 1")
        session = rec.session_entry
        assert session is not None and isinstance(session.body, SessionInfo)
        assert session.body.fingerprints == SCHEME and session.raw["body"]["fingerprints"] == SCHEME
    finally:
        rec.uninstall()
    legacy = SessionInfo.from_json({k: v for k, v in session.raw["body"].items() if k != "fingerprints"})
    assert legacy.fingerprints is None and "fingerprints" not in legacy.to_json()
