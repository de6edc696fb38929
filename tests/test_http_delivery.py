"""The payload server: ranges, and network faults that prove where they landed."""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.delivery import PayloadServer
from harness.errors import HarnessConfigError

SIZE = 1 << 20


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs-v2.img"
    path.write_bytes(bytes(range(256)) * (SIZE // 256))
    return path


def fetch(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read()


def test_a_clean_download_and_a_resumed_one(payload: Path):
    with PayloadServer({"v2": payload}) as server:
        assert fetch(server.url("v2")) == payload.read_bytes()
        tail = fetch(server.url("v2"), {"Range": "bytes=1000-"})
        assert tail == payload.read_bytes()[1000:]
        assert [(s.status, s.first_byte, s.bytes_sent) for s in server.wait_served(2)] == [
            (200, 0, SIZE),
            (206, 1000, SIZE - 1000),
        ]


def test_a_drop_cuts_the_stream_where_placed_and_a_retry_succeeds(payload: Path):
    with PayloadServer({"v2": payload}) as server:
        server.inject("v2", "drop", SIZE // 2)
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            fetch(server.url("v2"))
        assert fetch(server.url("v2")) == payload.read_bytes()
        first, retry = server.wait_served(2)
        assert (first.bytes_sent, first.fault) == (SIZE // 2, f"drop at {SIZE // 2}")
        assert (retry.bytes_sent, retry.fault) == (SIZE, None)


def test_corrupt_bytes_change_the_hash_and_are_logged(payload: Path):
    with PayloadServer({"v2": payload}) as server:
        server.inject("v2", "corrupt", 4096, length=16)
        got = fetch(server.url("v2"))
    want = payload.read_bytes()
    assert len(got) == len(want) and hashlib.sha256(got).digest() != hashlib.sha256(want).digest()
    assert [i for i in range(len(got)) if got[i] != want[i]] == list(range(4096, 4112))
    assert server.wait_served(1)[0].fault == "corrupt 16 B at 4096"


def test_a_stall_holds_the_stream_for_its_seconds(payload: Path):
    with PayloadServer({"v2": payload}) as server:
        server.inject("v2", "stall", 1000, seconds=1.0)
        started = time.monotonic()
        assert fetch(server.url("v2")) == payload.read_bytes()
        assert time.monotonic() - started >= 1.0
        assert server.wait_served(1)[0].fault == "stall 1 s at 1000"


def test_stopping_ends_a_stall_at_once_and_closes_the_port(payload: Path):
    server = PayloadServer({"v2": payload}).__enter__()
    server.inject("v2", "stall", 10, seconds=60)
    port = server.port
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
    client.recv(100)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_bad_names_and_places_are_one_line(payload: Path, tmp_path: Path):
    with pytest.raises(HarnessConfigError, match="is not a file"):
        PayloadServer({"v2": tmp_path / "missing.img"})
    with PayloadServer({"v2": payload}) as server:
        with pytest.raises(HarnessConfigError, match="served files: v2"):
            server.url("v3")
        with pytest.raises(HarnessConfigError, match="which has 1048576 bytes"):
            server.inject("v2", "drop", SIZE)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            fetch(server.url("v2").replace("/v2", "/nope"))
