"""narinfo parser: bytes only ever raise NarInfoError; accepted narinfos round-trip."""

from __future__ import annotations

from pytvix.nixcompat.narinfo import NarInfoError, parse_narinfo, render_narinfo


def test_one_input(data: bytes) -> None:
    """Parse; an accepted narinfo renders to a text that parses back to an equal value."""
    try:
        info = parse_narinfo(data)
    except NarInfoError:
        return
    text = render_narinfo(info)
    again = parse_narinfo(text)
    assert again == info, (info, again)
    assert render_narinfo(again) == text
    info.fingerprint()
