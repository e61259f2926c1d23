"""The BlobService contract over every blob backend."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pytvix.castore.blobservice import BlobService
from pytvix.testing.contract import BlobServiceContract
from tests.contract.backends import BLOB_BACKENDS


@pytest.fixture(params=sorted(BLOB_BACKENDS))
async def blob_service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BlobService]:
    async with BLOB_BACKENDS[request.param](tmp_path) as service:
        yield service


class TestBlobService(BlobServiceContract):
    pass
