"""Optional dependencies, installed as pip extras: a URL that needs a driver that is not
installed fails with the extra to install, not with an import traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pytvix.castore.composition import ConfigError

EXTRAS = {
    "obstore": "s3",  # object stores other than local files (S3, GCS, Azure, HTTP, memory)
    "asyncpg": "postgres",
    "nats": "nats",
    "pyfuse3": "fuse",
    "trio": "fuse",
}


@contextmanager
def needs_extra(what: str) -> Iterator[None]:
    """Turn the import of a missing optional dependency inside into a ConfigError naming the
    pip extra that provides it."""
    try:
        yield
    except ModuleNotFoundError as e:
        top = (e.name or "").partition(".")[0]
        extra = EXTRAS.get(top)
        if extra is None:
            raise
        raise ConfigError(
            f"{what} needs the {top} package: install pytvix with the {extra!r} extra "
            f"(pip install 'pytvix[{extra}]', or 'pytvix[all]')"
        ) from e
