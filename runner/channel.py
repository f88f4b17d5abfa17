"""Framing of runner/messages.py records between the Gunicorn process and its workers:
length-prefixed pickles over a socketpair. Sockets (not multiprocessing pipes) because
gevent makes socket waits cooperative, so a waiting request never blocks the event loop."""
from __future__ import annotations

import pickle
import socket
import struct

_HEADER = struct.Struct("!I")


class ConnectionClosed(Exception):
    """The other side went away (a worker died)."""


def send(sock: socket.socket, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def recv(sock: socket.socket) -> object:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return pickle.loads(_recv_exact(sock, size))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ConnectionClosed("connection closed")
        got += n
    return bytes(buf)
