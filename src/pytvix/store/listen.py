"""Listen addresses as upstream's tokio-listener accepts them: `host:port`, `[::]:port`, a
unix socket path (starting with `/` or `.`), or `@name` for an abstract unix socket."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ListenAddress", "ListenAddressError", "remove_stale_socket"]


class ListenAddressError(ValueError):
    pass


@dataclass(frozen=True)
class ListenAddress:
    """Where to listen: a TCP `host:port` or a unix socket path."""

    target: str  # what grpc binds to
    unix_path: Path | None = None
    host: str | None = None  # TCP only, without brackets
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """`host:port`, `[::]:port`, a unix socket path starting with `/` or `.`, or
        `@name` for an abstract unix socket (as tokio-listener accepts)."""
        if text.startswith(("/", ".")):
            path = Path(text).absolute()
            return cls(f"unix:{path}", path)
        if text.startswith("@"):
            return cls(f"unix-abstract:{text[1:]}")
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ListenAddressError(
                f"invalid listen address {text!r}: expected host:port, [::]:port, "
                "a unix socket path starting with / or ., or @abstract-name"
            )
        return cls(text, host=host.strip("[]"), port=int(port))

    @property
    def is_local(self) -> bool:
        """Unix sockets and loopback addresses: not reachable from other machines."""
        if self.port is None:
            return True
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host or "").is_loopback
        except ValueError:
            return False

    def describe(self, bound_port: int) -> str:
        """For logs: the socket path, or host and the port actually bound (for port 0)."""
        if self.port is None:
            return f"unix socket {self.unix_path or self.target}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{bound_port}"


def remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on any more; refuse to steal a live one."""
    if not path.exists():
        return
    if not path.is_socket():
        raise ListenAddressError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ListenAddressError(f"{path} is in use by a running server")
