"""PathInfo from proto bytes: only ValidatePathInfoError; accepted ones re-encode and render."""

from __future__ import annotations

from pytvix.nixcompat.narinfo import parse_narinfo
from pytvix.store.narinfo import to_narinfo
from pytvix.store.path_info import ValidatePathInfoError
from pytvix.store.proto import decode_path_info, path_info_to_proto


def test_one_input(data: bytes) -> None:
    """Decode; an accepted PathInfo round-trips through proto and through narinfo text."""
    try:
        info = decode_path_info(data)
    except ValidatePathInfoError:
        return
    again = decode_path_info(path_info_to_proto(info).SerializeToString())
    assert again == info, (info, again)
    info.fingerprint()
    narinfo = to_narinfo(info)
    parsed = parse_narinfo(narinfo.render())
    assert parsed == narinfo, (narinfo, parsed)
