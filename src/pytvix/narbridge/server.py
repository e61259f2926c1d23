"""Running the nar-bridge application on a listen address (TCP or unix socket)."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from pytvix.narbridge.app import BridgeConfig, NarBridge
from pytvix.nixcompat.signing import SigningKey
from pytvix.store.composition import StoreServices
from pytvix.store.listen import ListenAddress, ListenAddressError, remove_stale_socket
from pytvix.store.pathinfoservice.signing import load_signing_key

log = logging.getLogger(__name__)


def load_config(
    *,
    priority: int,
    signing_key_file: str | None,
    upload_token_file: str | None,
    compression: str,
) -> BridgeConfig:
    key: SigningKey | None = load_signing_key(signing_key_file) if signing_key_file else None
    token = None
    if upload_token_file:
        token = Path(upload_token_file).read_text().strip()
        if not token:
            raise ValueError(f"{upload_token_file} holds no token")
    return BridgeConfig(priority, key, token, compression)


async def start_bridge(services: StoreServices, config: BridgeConfig, listen: str) -> web.AppRunner:
    """Serve nar-bridge on `listen`; stop with `await runner.cleanup()`."""
    address = ListenAddress.parse(listen)
    runner = web.AppRunner(NarBridge(services, config).app(), access_log=None)
    await runner.setup()
    site: web.BaseSite
    if address.unix_path is not None:
        remove_stale_socket(address.unix_path)
        site = web.UnixSite(runner, str(address.unix_path))
    elif address.host is not None and address.port is not None:
        site = web.TCPSite(runner, address.host, address.port)
    else:
        await runner.cleanup()
        raise ListenAddressError(f"nar-bridge cannot listen on {listen}")
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise ListenAddressError(f"cannot listen on {listen}: {e.strerror}") from e
    log.info("nar-bridge listening on %s", listen)
    return runner
