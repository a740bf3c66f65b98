"""Request heads are bounded in size and in time, on real sockets against the REST server
as ``blindgate serve`` runs it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.http.server import HttpServer
from gateway.service import build_services
from gateway.store import open_store

HEAD_TIMEOUT = 1.0


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = Settings(
        data_dir=tmp_path / "data",
        dev_mode=True,
        header_timeout_seconds=HEAD_TIMEOUT,
        keep_alive_seconds=1,
    )
    server = HttpServer(build_services(store, settings), port=0)
    try:
        yield server.start()
    finally:
        server.stop()
        store.close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and data.split(b"\r\n\r\n", 1)[1].endswith(b"}"):
                break
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (fails if it stays open past ``limit``)."""
    began = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit} s")
    return time.monotonic() - began


def test_a_normal_head_is_served(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8192 + b"\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")


def test_a_one_mebibyte_header_is_refused(port: int) -> None:
    with _connect(port) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)  # the server may close while we are still sending
        answer = _answer(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert not answer.startswith(b"HTTP/1.1 200")


def test_slow_heads_are_closed_within_the_timeout(port: int) -> None:
    socks = [_connect(port) for _ in range(40)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte now and then, never the end of the head
            time.sleep(0.2)
            for sock in socks:
                sock.sendall(b"X")
        # meanwhile, an honest client is served
        with _connect(port) as honest:
            honest.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _answer(honest).startswith(b"HTTP/1.1 200")
        waited = [_closed_after(sock, HEAD_TIMEOUT + 3) for sock in socks]
        assert max(waited) < HEAD_TIMEOUT + 1
    finally:
        for sock in socks:
            sock.close()


def test_a_second_slow_head_on_a_kept_connection_is_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # then nothing more
        assert _closed_after(sock, HEAD_TIMEOUT + 3) < HEAD_TIMEOUT + 1
