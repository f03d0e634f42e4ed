"""A minimal beanstalkd connection that can pipeline commands.

greenstalk does one command per round trip. The worker's hot path (``delete`` of the
finished job sent in the same write as the next ``reserve-with-timeout``) and the bulk
producer (hundreds of ``put`` per write) need several commands in flight, so this module
speaks the wire protocol directly for those, with the command bytes of
:mod:`beanfleet.wire.commands`.  Error replies map to greenstalk's exception classes through
one table (:func:`reply_error`, greenstalk's own ``ERROR_RESPONSES``), used by every reader
of replies, so callers handle one set of server errors whichever client read the reply.

May import: greenstalk, the standard library and :mod:`beanfleet.wire.commands`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

import greenstalk

from beanfleet.wire import commands

CRLF = commands.CRLF


def reply_error(status: bytes, values: list[bytes]) -> greenstalk.Error:
    """The greenstalk exception for an error reply (``NOT_FOUND`` -> ``NotFoundError``, ...):
    the one reply->exception table, greenstalk's, so both clients raise the same types."""
    error = greenstalk.ERROR_RESPONSES.get(status)
    if error is not None:
        found: greenstalk.Error = error(values)
        return found
    return greenstalk.UnknownResponseError(status, values)


# Tube names may look like numbers ("007", "+1") and must stay as given.
_STRING_KEYS = frozenset({"name", "tube"})


def parse_yaml_mapping(data: bytes) -> dict[str, int | str]:
    # beanstalkd's stats replies are a flat YAML mapping of scalars; no YAML parser needed.
    result: dict[str, int | str] = {}
    for line in data.decode("ascii", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if key in _STRING_KEYS:
            result[key] = value
            continue
        try:
            result[key] = int(value)
        except ValueError:
            result[key] = value
    return result


class Connection:
    """One TCP connection to beanstalkd; sends raw commands, reads replies in order.

    It keeps its own receive buffer (instead of ``socket.makefile``) so a caller can tell
    whether a reply is already buffered before it waits on the socket with ``select``.
    """

    def __init__(self, address: tuple[str, int], connect_timeout: float = 5.0) -> None:
        self.address = address
        self.sock = socket.create_connection(address, timeout=connect_timeout)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._wait_limit: float | None = None

    def close(self) -> None:
        self.sock.close()

    def bound_waits(self, seconds: float) -> None:
        """Make every later read give up after ``seconds`` with TimeoutError (and a write
        stuck on a full buffer with an OSError), so a frozen server cannot hold the caller.

        Kernel timeouts (SO_RCVTIMEO / SO_SNDTIMEO) on the blocking socket: ``settimeout``
        would add a poll() to every send and recv of the worker's hot path."""
        whole = int(seconds)
        timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        self._wait_limit = seconds

    def fileno(self) -> int:
        return self.sock.fileno()

    def has_buffered(self) -> bool:
        """True when reply bytes are already buffered (``select`` would not report them)."""
        return bool(self._buf)

    # -- sending ---------------------------------------------------------------------------

    def send(self, lines: Iterable[bytes]) -> None:
        """Write every command (each without its CRLF) in one sendall."""
        self.sock.sendall(b"".join(c + CRLF for c in lines))

    def write(self, data: bytes) -> None:
        """Write whole command lines (from :mod:`beanfleet.wire.commands`, CRLF included)."""
        self.sock.sendall(data)

    @staticmethod
    def put_command(body: bytes, priority: int, delay: int, ttr: int) -> bytes:
        """A put without its final CRLF, for :meth:`send` (the drills use it)."""
        return commands.put(priority, delay, ttr, body)[: -len(CRLF)]

    # -- reading ---------------------------------------------------------------------------

    def _fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:  # SO_RCVTIMEO ran out (bound_waits)
            raise TimeoutError(f"no reply from beanstalkd in {self._wait_limit:g}s") from None
        if not data:
            raise ConnectionError("connection closed by beanstalkd")
        self._buf += data

    def read_reply(self) -> tuple[bytes, list[bytes]]:
        while (end := self._buf.find(CRLF)) < 0:
            self._fill()
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        status, *values = line.split()
        return status, values

    def read_lines(self, count: int) -> list[bytes]:
        """The next ``count`` reply lines (without CRLF), for replies that carry no body.

        One split over the buffer instead of ``count`` calls: the bulk producer reads
        hundreds of ``INSERTED <id>`` lines per batch.
        """
        found = self._buf.count(CRLF)
        while found < count:
            start = max(0, len(self._buf) - 1)  # a CRLF may straddle the old end
            self._fill()
            found += self._buf.count(CRLF, start)
        *lines, _rest = self._buf.split(CRLF, count)
        del self._buf[: sum(len(line) + 2 for line in lines)]
        return [bytes(line) for line in lines]

    def expect(self, *expected: bytes) -> tuple[bytes, list[bytes]]:
        """Read one reply; raise greenstalk's error class unless its status is expected."""
        status, values = self.read_reply()
        if status in expected:
            return status, values
        raise reply_error(status, values)

    def read_chunk(self, size: int) -> bytes:
        while len(self._buf) < size + 2:
            self._fill()
        if self._buf[size : size + 2] != CRLF:
            raise ConnectionError("malformed job body from beanstalkd")
        data = bytes(self._buf[:size])
        del self._buf[: size + 2]
        return data

    # -- one-round-trip helpers --------------------------------------------------------------

    def call(self, command: bytes, *expected: bytes) -> list[bytes]:
        """Send ``command`` (without its CRLF) and read its reply (see :meth:`expect`)."""
        self.send([command])
        return self.expect(*expected)[1]

    def request(self, line: bytes, *expected: bytes) -> list[bytes]:
        """Send one whole line from :mod:`beanfleet.wire.commands`; read its reply."""
        self.sock.sendall(line)
        return self.expect(*expected)[1]

    def stats_job(self, job_id: int) -> dict[str, int | str]:
        (size,) = self.request(commands.stats_job(job_id), b"OK")
        return parse_yaml_mapping(self.read_chunk(int(size)))

    def stats(self) -> dict[str, int | str]:
        (size,) = self.request(commands.stats(), b"OK")
        return parse_yaml_mapping(self.read_chunk(int(size)))
