"""Opening greenstalk clients with one-line errors instead of socket tracebacks."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import greenstalk

from beanfleet.errors import ConnectError
from beanfleet.names import parse_server
from beanfleet.wire.connection import Connection


def describe_os_error(exc: OSError) -> str:
    """'connection refused' rather than '[Errno 111] Connection refused'."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if exc.errno is not None and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc))
    return str(exc) or type(exc).__name__


def connect_error(server: str, exc: OSError) -> ConnectError:
    return ConnectError(f"cannot connect to beanstalkd at {server}: {describe_os_error(exc)}")


def open_client(
    server: str,
    use: str = greenstalk.DEFAULT_TUBE,
    watch: str | Iterable[str] = greenstalk.DEFAULT_TUBE,
    timeout: float = 5.0,
    reply_timeout: float | None = None,
) -> greenstalk.Client[bytes]:
    """A greenstalk client with raw-bytes bodies (decoding is ours: JSON, with clear errors).

    ``reply_timeout`` bounds every later read (TimeoutError, an OSError): a server stopped
    with SIGSTOP still accepts connections in the kernel but never answers."""
    address = parse_server(server)
    try:
        sock = socket.create_connection(address, timeout=timeout)
        sock.settimeout(reply_timeout)
        return greenstalk.Client(sock, encoding=None, use=use, watch=watch)
    except OSError as exc:
        raise connect_error(server, exc) from exc


class Closing:
    """A client holding connections: ``with`` it (or call :meth:`close`) to close them."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class ServerLinks(Closing):
    """What an Admin holds: a greenstalk client and a pipelining connection, each opened
    on first need; ``with`` (or :meth:`close`) closes both."""

    _client: greenstalk.Client[bytes] | None = None
    _pipe: Connection | None = None

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(OSError):  # closing a broken link may fail; it is gone
                client.close()
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            pipe.close()


def open_connection(
    server: str, timeout: float = 5.0, reply_timeout: float | None = None
) -> Connection:
    """A pipelining :class:`~beanfleet.wire.connection.Connection`, with the same one-line errors
    (``reply_timeout`` as for :func:`open_client`)."""
    try:
        conn = Connection(parse_server(server), connect_timeout=timeout)
    except OSError as exc:
        raise connect_error(server, exc) from exc
    conn.sock.settimeout(reply_timeout)
    return conn
