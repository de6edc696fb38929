"""Stream-decompress zstd through Debian's ``zstd`` tool (Python 3.11 has no zstd).

Newer mender-artifact releases can write ``.tar.zst`` members. Rather than
add a compiled dependency, the member is piped through ``zstd -dc``: a
feeder thread copies the compressed bytes into the tool while the reader
pulls the output, so a large payload is never held in memory or spooled
to disk. The tool's exit status is checked at the end of the stream
(zstd verifies its own frame checksums) and the process is killed on
close, so an abandoned read leaves nothing running.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import threading
from typing import IO

from harness.artifacts.errors import ArtifactError
from harness.errors import EnvironmentMissing

_EXIT_DEADLINE_S = 30.0
_CHUNK = 1 << 20


def zstd_reader(raw: IO[bytes], member: str) -> IO[bytes]:
    """A buffered reader of `raw` decompressed; errors name `member`."""
    return io.BufferedReader(_ZstdStream(raw, member), buffer_size=_CHUNK)


class _ZstdStream(io.RawIOBase):
    def __init__(self, raw: IO[bytes], member: str) -> None:
        super().__init__()
        tool = shutil.which("zstd")
        if tool is None:
            raise EnvironmentMissing(
                f"{member} is zstd-compressed and the zstd tool is not installed",
                "apt-get install --no-install-recommends zstd",
            )
        self._member = member
        self._feed_error: BaseException | None = None
        self._finished = False
        self._proc = subprocess.Popen(
            [tool, "-d", "-c", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._feeder = threading.Thread(target=self._feed, args=(raw,), daemon=True)
        self._feeder.start()

    def _feed(self, raw: IO[bytes]) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while chunk := raw.read(_CHUNK):
                stdin.write(chunk)
        except BrokenPipeError:
            pass  # the tool stopped (bad input or closed early); its exit status says which
        except (tarfile.TarError, OSError, EOFError) as err:  # a truncated outer tar
            self._feed_error = err  # re-raised by the reading side in _finish()
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        stdout = self._proc.stdout
        assert stdout is not None
        chunk = stdout.read1(len(buffer))  # type: ignore[attr-defined]  # a BufferedReader
        if not chunk:
            self._finish()
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._feeder.join(_EXIT_DEADLINE_S)
        try:
            status = self._proc.wait(_EXIT_DEADLINE_S)
        except subprocess.TimeoutExpired as err:
            self._proc.kill()
            raise ArtifactError(
                f"zstd did not finish {self._member} within {_EXIT_DEADLINE_S:.0f} s",
                "check the host's load and retry",
            ) from err
        if self._feed_error is not None:
            raise ArtifactError(
                f"{self._member} is broken or truncated ({self._feed_error})",
                "the artifact is damaged; rebuild it or fetch it again",
            )
        if status != 0:
            stderr = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
            lines = [line.split(" : ", 1)[-1].strip() for line in stderr.splitlines()]
            said = [line for line in lines if line] or [f"zstd exit {status}"]
            raise ArtifactError(
                f"{self._member} is not a valid zstd stream ({said[-1]})",
                "the artifact is damaged; rebuild it or fetch it again",
            )

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(_EXIT_DEADLINE_S)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        self._feeder.join(_EXIT_DEADLINE_S)
        super().close()
