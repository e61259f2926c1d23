"""narinfo parsing/rendering (PROTOCOL §4.8) and fingerprints (§7.5, VECTORS §5-§6)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytvix.nixcompat import (
    CANar,
    HashAlgo,
    NarInfo,
    NarInfoError,
    NixHash,
    Signature,
    SigningKey,
    StorePath,
    VerifyingKey,
    fingerprint,
    nixbase32,
    parse_narinfo,
    render_narinfo,
)
from tests.nixcompat.strategies import narinfos

DUMMY_PATH = StorePath(bytes(20), "dummy")

PATH_INFO_NARINFO = (
    "StorePath: /nix/store/00000000000000000000000000000000-dummy\n"
    "URL: nar/tvix-castore/CiISIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?narsize=0\n"
    "Compression: none\n"
    "NarHash: sha256:0000000000000000000000000000000000000000000000000000\n"
    "NarSize: 0\n"
    "References: 00000000000000000000000000000000-dummy\n"
    "CA: fixed:r:sha256:0000000000000000000000000000000000000000000000000000\n"
)

EXAMPLE_SECRET = (
    "cache.example.com-1:cCta2MEsRNuYCgWYyeRXLyfoFpKhQJKn8gLMeXWAb7vIpRKKo/3JoxJ24OYa3DxT2JVV38KjK"
    "/1ywHWuMe2JEw=="
)
EXAMPLE_PUBLIC = "cache.example.com-1:yKUSiqP9yaMSduDmGtw8U9iVVd/Coyv9csB1rjHtiRM="
TEST_PUBLIC = "do.not.use:cuXqnuzlWfGTKmfzBPx2kXShjRryZMhil2E2ngOpUdw="

# A cache.nixos.org-style narinfo, signed by the two test keys.
REALISTIC_NARINFO = (
    "StorePath: /nix/store/bhg1c6wywawwaaivx0k0x8xhbyx4vwic-hello-2.12.1\n"
    "URL: nar/101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v.nar.xz\n"
    "Compression: xz\n"
    "FileHash: sha256:101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v\n"
    "FileSize: 50264\n"
    "NarHash: sha256:0gsyc3g0w8wacg97wwm1iirigsl96k36iijdxiadn8cqcjmx18y1\n"
    "NarSize: 226560\n"
    "References: 37x7nfi9nsgbsvwx5nx7hij26dypa48v-glibc-2.39-52"
    " bhg1c6wywawwaaivx0k0x8xhbyx4vwic-hello-2.12.1\n"
    "Deriver: 0i92g2bnjw1k2r339gnkn6inx65y1lnb-hello-2.12.1.drv\n"
    "System: x86_64-linux\n"
    "Sig: cache.example.com-1:viY35fwszfqi+yCKMDfljREOZPx0StQaIIJuDgUmR0UlzA0cjgHmTwkKXvre5ZMguiCW"
    "vTCM2qLAWxu7wHRHCA==\n"
    "Sig: do.not.use:FiZZjAxW8/WCToXkMrz9sjQjIZn3relwFpYGQT1XcHdwLfYgT4EK5lVdTQxEATaAznWS4z8mhhKJir"
    "CBQgxPAw==\n"
    "CA: fixed:r:sha256:09hilccn2lvdwhkcq8i9ixjhyhk1vfwbvh2lgnn021fi05q0jnb9\n"
)

MINIMAL = (
    "StorePath: /nix/store/00000000000000000000000000000000-dummy\n"
    "URL: nar/x.nar\n"
    "NarHash: sha256:0000000000000000000000000000000000000000000000000000\n"
    "NarSize: 0\n"
    "References: \n"
)


# ------------------------------------------------------------------ PATH_INFO vectors


def test_path_info_parse() -> None:
    info = parse_narinfo(PATH_INFO_NARINFO)
    assert info.store_path == DUMMY_PATH
    assert info.url == "nar/tvix-castore/CiISIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?narsize=0"
    assert info.compression == "none"
    assert info.effective_compression == "none"
    assert info.file_hash is None
    assert info.file_size is None
    assert info.nar_hash == bytes(32)
    assert info.nar_size == 0
    assert info.references == (DUMMY_PATH,)
    assert info.deriver is None
    assert info.system is None
    assert info.signatures == ()
    assert info.ca == CANar(NixHash(HashAlgo.SHA256, bytes(32)))
    assert not info.nar_hash_was_hex


def test_path_info_render_byte_for_byte() -> None:
    info = NarInfo(
        store_path=DUMMY_PATH,
        url="nar/tvix-castore/CiISIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?narsize=0",
        compression="none",
        nar_hash=bytes(32),
        nar_size=0,
        references=(DUMMY_PATH,),
        ca=CANar(NixHash(HashAlgo.SHA256, bytes(32))),
    )
    assert render_narinfo(info) == PATH_INFO_NARINFO
    assert info.render() == PATH_INFO_NARINFO
    assert render_narinfo(parse_narinfo(PATH_INFO_NARINFO)) == PATH_INFO_NARINFO
    assert parse_narinfo(PATH_INFO_NARINFO) == info


def test_path_info_fingerprint_and_signature(vectors: dict[str, Any]) -> None:
    v = vectors["signing"]
    info = parse_narinfo(PATH_INFO_NARINFO)
    assert info.fingerprint() == v["fingerprint"].encode()
    assert fingerprint(DUMMY_PATH, bytes(32), 0, [DUMMY_PATH]) == v["fingerprint"].encode()
    signed = info.with_signature(SigningKey.parse(v["secret_key"]))
    assert signed.signatures == (Signature.parse(v["signature"]),)
    assert signed.verify([VerifyingKey.parse(v["public_key"])])
    assert not info.verify([VerifyingKey.parse(v["public_key"])])
    assert not signed.verify([])
    assert not signed.verify([VerifyingKey.parse(EXAMPLE_PUBLIC)])
    # the Sig line goes between References and CA
    text = render_narinfo(signed)
    assert text == PATH_INFO_NARINFO.replace("CA: ", f"Sig: {v['signature']}\nCA: ")
    assert parse_narinfo(text) == signed


def test_fingerprint_no_references() -> None:
    fp = fingerprint(DUMMY_PATH, bytes(32), 1234, [])
    assert fp == (
        b"1;/nix/store/00000000000000000000000000000000-dummy;"
        b"sha256:0000000000000000000000000000000000000000000000000000;1234;"
    )
    with pytest.raises(ValueError, match="32 bytes"):
        fingerprint(DUMMY_PATH, bytes(20), 0, [])


def test_fingerprint_keeps_reference_order() -> None:
    a = StorePath.from_basename("00bgd045z0d4icpbc2yyz4gx48ak44la-a")
    fp = fingerprint(DUMMY_PATH, bytes(32), 0, [a, DUMMY_PATH])
    assert fp.endswith(
        b";/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-a,/nix/store/" + b"0" * 32 + b"-dummy"
    )


# ------------------------------------------------------------------ realistic narinfo


def test_realistic_narinfo() -> None:
    info = parse_narinfo(REALISTIC_NARINFO)
    assert info.store_path.to_absolute_path() == (
        "/nix/store/bhg1c6wywawwaaivx0k0x8xhbyx4vwic-hello-2.12.1"
    )
    assert info.compression == "xz"
    assert info.file_hash == nixbase32.decode(
        "101bq2db3ma3wnf6ycg88s9ar67igjf30kz1sdm1p8zh6s7kb71v"
    )
    assert info.file_size == 50264
    assert info.nar_size == 226560
    assert [str(r) for r in info.references] == [
        "37x7nfi9nsgbsvwx5nx7hij26dypa48v-glibc-2.39-52",
        "bhg1c6wywawwaaivx0k0x8xhbyx4vwic-hello-2.12.1",
    ]
    assert info.deriver is not None
    assert str(info.deriver) == "0i92g2bnjw1k2r339gnkn6inx65y1lnb-hello-2.12.1"
    assert info.deriver.name == "hello-2.12.1"
    assert info.system == "x86_64-linux"
    assert [s.name for s in info.signatures] == ["cache.example.com-1", "do.not.use"]
    assert isinstance(info.ca, CANar)
    assert info.ca.hash.algo is HashAlgo.SHA256
    assert render_narinfo(info) == REALISTIC_NARINFO
    example, test = VerifyingKey.parse(EXAMPLE_PUBLIC), VerifyingKey.parse(TEST_PUBLIC)
    fp = info.fingerprint()
    assert example.verify(fp, info.signatures[0])
    assert test.verify(fp, info.signatures[1])
    assert not example.verify(fp, info.signatures[1])
    assert info.verify([example])
    assert info.verify([test])
    tampered = dataclasses.replace(info, nar_size=info.nar_size + 1)
    assert not tampered.verify([example, test])


def test_realistic_signatures_reproducible() -> None:
    info = parse_narinfo(REALISTIC_NARINFO)
    bare = dataclasses.replace(info, signatures=())
    resigned = bare.with_signature(SigningKey.parse(EXAMPLE_SECRET))
    assert resigned.signatures == info.signatures[:1]


def test_unknown_keys_ignored() -> None:
    text = REALISTIC_NARINFO.replace("System: ", "Foo: bar\nFoo: baz\nSystem: ") + "X: y\n"
    assert parse_narinfo(text) == parse_narinfo(REALISTIC_NARINFO)


def test_minimal_and_absent_compression() -> None:
    info = parse_narinfo(MINIMAL)
    assert info.compression is None
    assert info.effective_compression == "bzip2"
    assert info.references == ()
    assert render_narinfo(info) == MINIMAL
    assert MINIMAL.endswith("References: \n")


def test_last_line_without_newline() -> None:
    assert parse_narinfo(MINIMAL.rstrip("\n")) == parse_narinfo(MINIMAL)


def test_bytes_input() -> None:
    assert parse_narinfo(MINIMAL.encode()) == parse_narinfo(MINIMAL)
    with pytest.raises(NarInfoError, match="UTF-8"):
        parse_narinfo(b"\xff" + MINIMAL.encode())


def test_hex_nar_hash() -> None:
    hex_digest = "60adfd293a4d81ad7cd7e47263cbb3fc846309ef91b154a08ba672b558f94ff3"
    text = MINIMAL.replace("sha256:" + "0" * 52, "sha256:" + hex_digest)
    info = parse_narinfo(text)
    assert info.nar_hash_was_hex
    assert info.nar_hash == bytes.fromhex(hex_digest)
    rendered = render_narinfo(info)
    assert f"NarHash: sha256:{nixbase32.encode(bytes.fromhex(hex_digest))}\n" in rendered
    assert hex_digest not in rendered
    reparsed = parse_narinfo(rendered)
    assert not reparsed.nar_hash_was_hex
    assert reparsed == info  # the flag is not part of equality


def test_ca_vector_in_narinfo() -> None:
    info = parse_narinfo(MINIMAL + "CA: fixed:r:sha1:1ak1ymbmsfx7z8kh09jzkr3a4dvkrfjw\n")
    assert info.ca == CANar(
        NixHash(HashAlgo.SHA1, bytes.fromhex("5cba3c77236ae4f9650270a27fbad375551fa60a"))
    )


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize(
    "key", ["StorePath", "URL", "NarHash", "NarSize", "References", "Compression", "CA"]
)
def test_duplicate_key_rejected(key: str) -> None:
    text = parse_narinfo(PATH_INFO_NARINFO).render()
    line = next(ln for ln in text.splitlines(keepends=True) if ln.startswith(key + ":"))
    with pytest.raises(NarInfoError, match=f"duplicate key '{key}'"):
        parse_narinfo(text + line)


def test_duplicate_optional_keys_rejected() -> None:
    lines = REALISTIC_NARINFO.splitlines(keepends=True)
    for line in lines:
        key = line.split(":", 1)[0]
        if key == "Sig":
            continue
        with pytest.raises(NarInfoError, match="duplicate"):
            parse_narinfo(REALISTIC_NARINFO + line)
    # Sig is repeatable
    sig_line = next(ln for ln in lines if ln.startswith("Sig:"))
    assert len(parse_narinfo(REALISTIC_NARINFO + sig_line).signatures) == 3


@pytest.mark.parametrize("key", ["StorePath", "URL", "NarHash", "NarSize", "References"])
def test_missing_required_rejected(key: str) -> None:
    text = "".join(ln for ln in MINIMAL.splitlines(keepends=True) if not ln.startswith(key + ":"))
    with pytest.raises(NarInfoError, match=f"missing required key\\(s\\): {key}"):
        parse_narinfo(text)


def test_empty_rejected() -> None:
    with pytest.raises(NarInfoError, match="StorePath, URL, NarHash, NarSize, References"):
        parse_narinfo("")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("NarSize: 0", "NarSize:0", "line 4 \\(NarSize\\): expected exactly one space"),
        ("URL: nar/x.nar", "URL:nar/x.nar", "line 2 \\(URL\\)"),
        ("URL: nar/x.nar", "URL nar/x.nar", "line 2: expected 'Key: value'"),
        ("URL: nar/x.nar", "URL: nar/x.nar\n", "line 3: expected 'Key: value'"),  # empty line
        ("URL: nar/x.nar", "URL: ", "line 2 \\(URL\\): invalid value ''"),
        ("NarSize: 0", "NarSize:  0", "line 4 \\(NarSize\\)"),
        ("NarSize: 0", "NarSize: -1", "NarSize"),
        ("NarSize: 0", "NarSize: +1", "NarSize"),
        ("NarSize: 0", "NarSize: 1_0", "NarSize"),
        ("NarSize: 0", "NarSize: 18446744073709551616", "does not fit in 64 bits"),
        ("NarSize: 0", "NarSize: \u0661", "NarSize"),
        ("NarSize: 0", "NarSize: " + "9" * 5000, "does not fit in 64 bits"),
        ("NarSize: 0", "NarSize: ", "NarSize"),
        ("NarSize: 0", "NarSize: 0\r", "NarSize"),
        ("sha256:" + "0" * 52, "sha1:" + "0" * 32, "NarHash"),
        ("sha256:" + "0" * 52, "sha256:" + "0" * 51, "NarHash"),
        ("sha256:" + "0" * 52, "sha256:" + "A" * 64, "not lowercase hex"),
        ("sha256:" + "0" * 52, "sha256:" + "z" * 52, "NarHash"),
        ("StorePath: /nix/store/", "StorePath: /nix/stor/", "StorePath"),
        ("StorePath: /nix/store/", "StorePath: ", "StorePath"),
        ("-dummy\n", "-dummy/bin\n", "StorePath"),
        ("References: ", "References:  ", "References"),
        ("References: ", "References: /nix/store/" + "0" * 32 + "-dummy", "References"),
        ("References: ", "References: " + "0" * 32 + "-a  " + "0" * 32 + "-b", "References"),
    ],
)
def test_bad_lines_rejected(old: str, new: str, message: str) -> None:
    assert old in MINIMAL
    with pytest.raises(NarInfoError, match=message):
        parse_narinfo(MINIMAL.replace(old, new, 1))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Compression: \n", "Compression"),
        ("System: \n", "System"),
        ("FileSize: x\n", "FileSize"),
        ("FileHash: sha256:" + "0" * 51 + "\n", "FileHash"),
        ("FileHash: " + "0" * 52 + "\n", "FileHash"),
        ("FileHash: sha256:" + "0" * 64 + "\n", "FileHash"),
        ("Deriver: " + "0" * 32 + "-foo\n", "does not end in '.drv'"),
        ("Deriver: " + "0" * 32 + "-.drv\n", "Deriver"),
        ("Deriver: /nix/store/" + "0" * 32 + "-foo.drv\n", "Deriver"),
        ("Sig: foo\n", "Sig"),
        ("Sig: k:AAAA\n", "Sig"),
        ("CA: fixed:sha256:00\n", "CA"),
        ("CA: nope\n", "CA"),
    ],
)
def test_bad_optional_fields_rejected(line: str, message: str) -> None:
    with pytest.raises(NarInfoError, match=message):
        parse_narinfo(MINIMAL + line)


def test_error_message_names_line() -> None:
    with pytest.raises(NarInfoError) as info:
        parse_narinfo(MINIMAL + "FileSize: many\n")
    assert str(info.value).startswith("line 6 (FileSize): invalid value 'many'")
    assert isinstance(info.value, ValueError)


def test_leading_zeros_in_sizes() -> None:
    info = parse_narinfo(
        MINIMAL.replace("NarSize: 0", "NarSize: " + "0" * 30 + "18446744073709551615")
    )
    assert info.nar_size == 2**64 - 1
    assert "NarSize: 18446744073709551615\n" in info.render()


def test_deriver_round_trip() -> None:
    info = parse_narinfo(MINIMAL + "Deriver: " + "0" * 32 + "-foo.drv\n")
    assert info.deriver == StorePath(bytes(20), "foo")
    assert "Deriver: " + "0" * 32 + "-foo.drv\n" in info.render()


def test_value_with_colons_and_spaces() -> None:
    info = parse_narinfo(MINIMAL.replace("URL: nar/x.nar", "URL: http://a b: c"))
    assert info.url == "http://a b: c"


# ------------------------------------------------------------------ constructor


def test_constructor_validation() -> None:
    base: dict[str, Any] = {
        "store_path": DUMMY_PATH,
        "url": "u",
        "nar_hash": bytes(32),
        "nar_size": 0,
    }
    assert NarInfo(**base).references == ()
    assert NarInfo(**{**base, "references": [DUMMY_PATH]}).references == (DUMMY_PATH,)
    bad: list[tuple[str, object]] = [
        ("store_path", "x"),
        ("url", ""),
        ("url", "a\nb"),
        ("nar_hash", bytes(20)),
        ("nar_size", -1),
        ("nar_size", 2**64),
        ("nar_size", True),
        ("file_size", 1.5),
        ("file_hash", bytes(31)),
        ("compression", ""),
        ("system", "x\n"),
        ("references", ["x"]),
        ("signatures", ["x"]),
        ("deriver", "x.drv"),
    ]
    for key, value in bad:
        with pytest.raises(NarInfoError):
            NarInfo(**{**base, key: value})


def test_frozen_and_hashable() -> None:
    info = parse_narinfo(REALISTIC_NARINFO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.url = "x"  # type: ignore[misc]
    assert hash(info) == hash(parse_narinfo(REALISTIC_NARINFO))


# ------------------------------------------------------------------ properties


@given(narinfos)
def test_round_trip(info: NarInfo) -> None:
    text = render_narinfo(info)
    assert text.endswith("\n")
    parsed = parse_narinfo(text)
    assert parsed == info
    assert render_narinfo(parsed) == text


@given(st.text(max_size=400))
def test_random_text_only_raises_narinfo_error(text: str) -> None:
    with contextlib.suppress(NarInfoError):
        parse_narinfo(text)


@given(st.binary(max_size=400))
def test_random_bytes_only_raise_narinfo_error(data: bytes) -> None:
    with contextlib.suppress(NarInfoError):
        parse_narinfo(data)


_KEYS = [
    "StorePath",
    "URL",
    "Compression",
    "FileHash",
    "FileSize",
    "NarHash",
    "NarSize",
    "References",
    "Deriver",
    "System",
    "Sig",
    "CA",
    "Other",
]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(_KEYS),
            st.sampled_from([": ", ":", ":  "]),
            st.one_of(
                st.text(max_size=60),
                st.text(alphabet=nixbase32.ALPHABET + "sha256:-/.nixstore ", max_size=80),
            ),
        ),
        max_size=15,
    )
)
def test_structured_fuzz_only_raises_narinfo_error(lines: list[tuple[str, str, str]]) -> None:
    text = "".join(f"{k}{sep}{v}\n" for k, sep, v in lines)
    with contextlib.suppress(NarInfoError):
        parse_narinfo(text)


@given(narinfos, st.data())
def test_mutated_valid_narinfo_only_raises_narinfo_error(
    info: NarInfo, data: st.DataObject
) -> None:
    text = render_narinfo(info)
    pos = data.draw(st.integers(min_value=0, max_value=len(text)))
    insert = data.draw(st.text(max_size=5))
    cut = data.draw(st.integers(min_value=0, max_value=5))
    with contextlib.suppress(NarInfoError):
        parse_narinfo(text[:pos] + insert + text[pos + cut :])
