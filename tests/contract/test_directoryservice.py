"""The DirectoryService contract over every directory backend."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pytvix.castore.directoryservice import DirectoryService
from pytvix.testing.contract import DirectoryServiceContract
from tests.contract.backends import DIRECTORY_BACKENDS


@pytest.fixture(params=sorted(DIRECTORY_BACKENDS))
async def directory_service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[DirectoryService]:
    async with DIRECTORY_BACKENDS[request.param](tmp_path) as service:
        yield service


class TestDirectoryService(DirectoryServiceContract):
    pass
