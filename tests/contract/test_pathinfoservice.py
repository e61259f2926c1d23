"""The PathInfoService contract over every path info backend."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pytvix.store.pathinfoservice import PathInfoService
from pytvix.testing.contract import PathInfoServiceContract
from tests.contract.backends import PATHINFO_BACKENDS


@pytest.fixture(params=sorted(PATHINFO_BACKENDS))
async def path_info_service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PathInfoService]:
    async with PATHINFO_BACKENDS[request.param](tmp_path) as service:
        yield service


class TestPathInfoService(PathInfoServiceContract):
    pass
