"""One folder per run under the results folder, `latest` pointing at the newest.

    ab-results/
      20261128-091502.250-4711/      one run: a folder per test, run.json, report.html
      20261128-093011.007-4802/
      latest -> 20261128-093011.007-4802

The run id is chosen once per run (by the pytest-xdist controller, which
hands it to its workers, so they share one folder). A run folder appears
only when a test writes evidence, so runs of unit tests alone neither
create folders nor push real evidence out. When a run folder is opened,
the oldest run folders beyond `keep` are removed; only folders whose name
is a run id are ever touched, and never one whose run is still going (its
pid, the last part of the id, is alive): two runs sharing a results
folder do not delete each other's evidence.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from harness.errors import HarnessConfigError

LATEST = "latest"
DEFAULT_KEEP = 10
RUN_ID = re.compile(r"^\d{8}-\d{6}\.\d{3}-\d+$")


def new_run_id(now: float | None = None, pid: int | None = None) -> str:
    """A run id that sorts by start time: YYYYmmdd-HHMMSS.mmm-<pid> (UTC); the
    pid keeps two runs started in the same millisecond apart."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{os.getpid() if pid is None else pid}"


def parse_keep(value: str | None) -> int:
    """The --ab-keep-runs value: a whole number of runs, at least 1."""
    if value is None:
        return DEFAULT_KEEP
    try:
        keep = int(value)
    except ValueError:
        keep = 0
    if keep < 1:
        raise HarnessConfigError(
            f"--ab-keep-runs must be a whole number of runs, at least 1 (got {value!r})",
            f"give e.g. --ab-keep-runs {DEFAULT_KEEP}",
        )
    return keep


def run_folders(root: Path) -> list[Path]:
    """The run folders under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if RUN_ID.match(p.name) and p.is_dir() and not p.is_symlink()
    ]
    return sorted(found, key=lambda p: p.name)


def open_run(root: Path, run_id: str, keep: int = DEFAULT_KEEP) -> Path:
    """Create (or reuse) the run folder, point `latest` at it, prune old runs.

    Safe to call from several pytest-xdist workers at once: the folder is
    made with exist_ok, `latest` is replaced atomically, and removals of
    a folder another worker already removed are ignored.
    """
    folder = root / run_id
    folder.mkdir(parents=True, exist_ok=True)
    link = root / LATEST
    if not (link.is_symlink() and os.readlink(link) == run_id):
        temp = root / f".{LATEST}.{os.getpid()}"
        temp.unlink(missing_ok=True)
        temp.symlink_to(run_id, target_is_directory=True)
        os.replace(temp, link)
    prune(root, keep, current=run_id)
    return folder


def prune(root: Path, keep: int, current: str | None = None) -> list[Path]:
    """Remove the oldest run folders so that `keep` remain (never `current`,
    nor a run whose process is still alive)."""
    folders = [p for p in run_folders(root) if p.name != current]
    room = keep - (1 if current is not None else 0)
    doomed = [p for p in folders[: max(len(folders) - room, 0)] if not _running(p.name)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def _running(run_id: str) -> bool:
    """Whether the process that started run `run_id` still runs (on this host)."""
    pid = int(run_id.rsplit("-", 1)[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def resolve_run(path: Path) -> Path:
    """The run folder that `path` names: a run folder itself, or a results
    folder (its `latest`, else its newest run), or a folder of test
    folders from before runs had folders."""
    if (path / "run.json").is_file():
        return path
    if (path / LATEST).is_dir():
        return (path / LATEST).resolve()
    runs = run_folders(path)
    if runs:
        return runs[-1]
    if path.is_dir():
        return path
    raise HarnessConfigError(
        f"no results folder at {path}",
        "give the folder a test run wrote (--ab-results, default ab-results/)",
    )
