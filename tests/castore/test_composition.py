"""from_addr URL rules (PROTOCOL.md §3.2) and named compositions (§3.3)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytvix.castore.blobservice.memory import MemoryBlobService
from pytvix.castore.composition import (
    BLOB_SERVICES,
    DIRECTORY_SERVICES,
    Composition,
    ConfigError,
    ServiceConfig,
    ServiceKind,
    ServiceUrl,
    from_addr,
)
from pytvix.castore.directoryservice.memory import MemoryDirectoryService


@pytest.mark.parametrize("url", ["memory://", "memory:"])
async def test_memory_urls(url: str) -> None:
    assert isinstance(await from_addr(BLOB_SERVICES, url), MemoryBlobService)
    assert isinstance(await from_addr(DIRECTORY_SERVICES, url), MemoryDirectoryService)


@pytest.mark.parametrize(
    "url", ["memory:///", "memory://foo", "memory://?x=1", "nope://", "/abs/path", ""]
)
async def test_rejected_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        await from_addr(BLOB_SERVICES, url)


async def test_redb_gets_a_helpful_error() -> None:
    with pytest.raises(ConfigError, match="lmdb"):
        await from_addr(DIRECTORY_SERVICES, "redb:///var/lib/x.redb")


def test_service_url_parts() -> None:
    url = ServiceUrl.parse("objectstore+s3://bucket/some/prefix?aws_allow_http=true&k=1&k=2")
    assert url.tag == "objectstore"
    assert url.inner_scheme == "s3"
    assert url.host == "bucket"
    assert url.path == "/some/prefix"
    assert url.query_value("aws_allow_http") == "true"
    assert url.query_values("k") == ["1", "2"]
    with pytest.raises(ConfigError, match="more than once"):
        url.query_value("k")


# --- compositions with a referencing test backend -----------------------------------------

built: list[str] = []


@dataclass(frozen=True)
class RefConfig(ServiceConfig[object]):
    """A test backend that depends on other instances."""

    refs: tuple[str, ...] = ()
    label: str = ""

    async def build(self, instance: str, composition: Composition) -> object:
        built.append(instance)
        await asyncio.sleep(0)
        return {
            "name": instance,
            "refs": [await composition.build(TEST_KIND, r) for r in self.refs],
        }


TEST_KIND: ServiceKind[object] = ServiceKind(
    "testservices", "test service", {"ref": "tests.castore.test_composition:RefConfig"}
)


async def test_each_instance_built_once_and_shared() -> None:
    built.clear()
    comp = Composition(
        {
            "testservices": {
                "default": {"type": "ref", "refs": ["a", "b"]},
                "a": {"type": "ref", "refs": ["shared"]},
                "b": {"type": "ref", "refs": ["shared"]},
                "shared": {"type": "ref"},
            }
        },
        [TEST_KIND],
    )
    root, again = await asyncio.gather(comp.build(TEST_KIND), comp.build(TEST_KIND, "default"))
    assert root is again
    assert sorted(built) == ["a", "b", "default", "shared"]
    a, b = root["refs"]  # type: ignore[index]
    assert a["refs"][0] is b["refs"][0]


async def test_recursion_rejected() -> None:
    comp = Composition(
        {
            "testservices": {
                "default": {"type": "ref", "refs": ["a"]},
                "a": {"type": "ref", "refs": ["default"]},
            }
        },
        [TEST_KIND],
    )
    with pytest.raises(
        ConfigError,
        match=r"recursion not allowed: testservices.default -> testservices.a -> testservices.default",
    ):
        await comp.build(TEST_KIND)


async def test_unknown_reference() -> None:
    comp = Composition(
        {"testservices": {"default": {"type": "ref", "refs": ["ghost"]}}}, [TEST_KIND]
    )
    with pytest.raises(ConfigError, match="'ghost' not found"):
        await comp.build(TEST_KIND)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"type": "ref", "bogus": 1}, "unknown field"),
        ({"type": "ref", "label": 3}, "must be a str"),
        ({"type": "ref", "refs": "x"}, "must be a list"),
        ({"refs": []}, "missing string field 'type'"),
        ({"type": "nope"}, "unknown test service type 'nope'"),
    ],
)
def test_bad_tables(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Composition({"testservices": {"default": table}}, [TEST_KIND])


def test_unknown_section() -> None:
    with pytest.raises(ConfigError, match="unknown section"):
        Composition({"blobz": {}}, [BLOB_SERVICES])


async def test_from_toml_and_anonymous_url(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text(
        '[blobservices.default]\ntype = "memory"\n\n[directoryservices.default]\ntype = "memory"\n'
    )
    comp = Composition.from_toml(path, [BLOB_SERVICES, DIRECTORY_SERVICES])
    assert isinstance(await comp.build(BLOB_SERVICES), MemoryBlobService)
    assert isinstance(await comp.build(DIRECTORY_SERVICES), MemoryDirectoryService)
    assert isinstance(await comp.build(BLOB_SERVICES, "memory://"), MemoryBlobService)
    await comp.close()
    bad = tmp_path / "bad.toml"
    bad.write_text("[blobservices.default\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Composition.from_toml(bad, [BLOB_SERVICES])
    with pytest.raises(ConfigError, match="cannot read"):
        Composition.from_toml(tmp_path / "missing.toml", [BLOB_SERVICES])
