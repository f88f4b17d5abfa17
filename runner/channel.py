"""Framing of runner/messages.py records between the Gunicorn process and its workers:
length-prefixed pickles over a socketpair. Sockets (not multiprocessing pipes) because
gevent makes socket waits cooperative, so a waiting request never blocks the event loop.

One message is in flight per direction at a time (a job, then its reply), so a receiver
reads the header and, usually, the whole message with one ``recv``.
"""
from __future__ import annotations

import pickle
import socket
import struct

_HEADER = struct.Struct("!I")
_FIRST_READ = 1 << 16


class ConnectionClosed(Exception):
    """The other side went away (a worker died)."""


def send(sock: socket.socket, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) < _FIRST_READ:  # one syscall
        sock.sendall(_HEADER.pack(len(data)) + data)
    else:  # no copy of a large body to put a header before it
        sock.sendall(_HEADER.pack(len(data)))
        sock.sendall(data)


def recv(sock: socket.socket) -> object:
    first = b""
    while len(first) < _HEADER.size:
        more = sock.recv(_FIRST_READ)
        if not more:
            raise ConnectionClosed("connection closed")
        first += more
    (size,) = _HEADER.unpack_from(first)
    end = _HEADER.size + size
    if len(first) > end:
        raise ConnectionClosed("protocol error: bytes after a message")
    if len(first) == end:
        return pickle.loads(memoryview(first)[_HEADER.size:])
    buf = bytearray(size)
    got = len(first) - _HEADER.size
    buf[:got] = memoryview(first)[_HEADER.size:]
    view = memoryview(buf)
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ConnectionClosed("connection closed")
        got += n
    return pickle.loads(buf)
