"""tee_console hands every chunk a console reads to the recorder, unchanged and in order."""

from harness.console import tee_console


class ChunkConsole:
    """A console whose _read returns queued chunks (b"" when idle), like labgrid's drivers."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def _read(self, size: int = 1, timeout: float = 0.0, max_size: int | None = None) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_every_chunk_reaches_the_sink_and_the_reader() -> None:
    console = ChunkConsole([b"U-Boot 2023.01\r\n", b"ab-boot: slot=A", b"\r\n"])
    seen: list[bytes] = []

    tee_console(console, seen.append)
    read = [console._read(timeout=1) for _ in range(4)]

    assert read == [b"U-Boot 2023.01\r\n", b"ab-boot: slot=A", b"\r\n", b""]
    assert seen == [b"U-Boot 2023.01\r\n", b"ab-boot: slot=A", b"\r\n"]  # idle reads not recorded


def test_arguments_pass_through_to_the_driver() -> None:
    calls: list[tuple[int, float, int | None]] = []

    class ArgConsole:
        def _read(self, size: int = 1, timeout: float = 0.0, max_size: int | None = None) -> bytes:
            calls.append((size, timeout, max_size))
            return b"x"

    console = ArgConsole()
    tee_console(console, lambda data: None)
    console._read(size=4, timeout=2.5, max_size=64)

    assert calls == [(4, 2.5, 64)]
