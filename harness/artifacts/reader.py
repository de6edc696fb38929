"""Read a Mender artifact (format 2 or 3) and check it against its own manifest.

An artifact is an outer tar, in this order: ``version``, ``manifest``
(``sha256  name`` lines), optional ``manifest.sig`` and
``manifest-augment``, ``header.tar*``, optional ``header-augment.tar*``,
then ``data/NNNN.tar*``, one per payload. The manifest lists the sha256 of
``version``, of the compressed header and of every file *inside* the data
tars, so the reader streams each data tar once, hashing as it goes, and
compares. Any mismatch, any file not in a manifest, anything the manifest
lists but the artifact lacks, and any unreadable stream is an
`ArtifactError` naming that file: a damaged artifact must never look like
an artifact with fewer payloads.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from harness.artifacts.errors import ArtifactError
from harness.artifacts.header import Header, parse_header
from harness.artifacts.model import Artifact, Payload, PayloadFile, Signature
from harness.artifacts.signature import load_verify_key, verify_manifest
from harness.artifacts.streams import BROKEN, decompressed, drain, split_suffix
from harness.errors import HarnessConfigError

_DATA = re.compile(r"^data/(\d{4})\.tar(\.gz|\.xz|\.zst)?$")
_HEADER = re.compile(r"^header(-augment)?\.tar(\.gz|\.xz|\.zst)?$")
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")
_SMALL_LIMIT = 64 << 20  # version, manifests and headers are kilobytes
_CHUNK = 1 << 20
_END_MARKER = 1024  # two zero blocks end a tar
_REBUILD = "the artifact is damaged or was altered; rebuild it or fetch it again"


def read_artifact(path: Path, verify_key: Path | None = None) -> Artifact:
    """Read `path`, verify every checksum (and the signature if `verify_key`), return it.

    Raises `ArtifactError` naming the inner file when the artifact is not
    a Mender artifact, is truncated, or any content differs from the manifest.
    An invalid signature is not raised: it is `Artifact.signature`.
    """
    key = load_verify_key(verify_key) if verify_key is not None else None
    try:
        handle = path.open("rb")
    except OSError as err:
        raise HarnessConfigError(
            f"cannot open artifact {path}: {err.strerror}", "give the path of a .mender file"
        ) from err
    walk = _Walk(path)
    with handle, _open_outer(handle, path) as outer:
        walk.read_all(outer)
        _check_end(handle, outer.offset, path)
    artifact = walk.result()
    if key is None:
        return artifact
    problem = (
        verify_manifest(walk.manifest_bytes, walk.signature, key)
        if walk.signature is not None
        else "the artifact is not signed"
    )
    return _with_signature(artifact, problem)


def _check_end(handle: IO[bytes], end: int, path: Path) -> None:
    """The tar must end cleanly: its end marker whole, or (like Go's reader) no marker at all.

    Python's tarfile stops quietly at a short or invalid block after the first
    member, so a cut inside the end marker or garbage after the last file would
    otherwise pass as a complete artifact.
    """
    handle.seek(end)
    tail = handle.read(_END_MARKER)
    if tail and tail != bytes(_END_MARKER):
        raise ArtifactError(
            f"{path} is truncated or has unreadable bytes after its last file (at byte {end})",
            _REBUILD,
        )


def _open_outer(handle: IO[bytes], path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=handle, mode="r|")
    except tarfile.TarError as err:
        raise ArtifactError(
            f"{path} is not a Mender artifact (not a tar archive: {err})",
            "give the path of a .mender file written by mender-artifact",
        ) from err


def _with_signature(artifact: Artifact, problem: str | None) -> Artifact:
    state = Signature.VALID if problem is None else Signature.INVALID
    return replace(artifact, signature=state, signature_problem=problem)


@dataclass
class _Walk:
    """What has been read of the outer tar so far, in order."""

    path: Path
    version: int = 0
    format: str = ""
    manifest: dict[str, str] = field(default_factory=dict)
    augment: dict[str, str] = field(default_factory=dict)
    manifest_bytes: bytes = b""
    signature: bytes | None = None
    header: Header | None = None
    header_member: str = ""
    version_digest: str = ""
    header_augment: Header | None = None
    files: dict[int, list[PayloadFile]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def read_all(self, outer: tarfile.TarFile) -> None:
        first = True
        for member in _members(outer, self.path):
            name = member.name
            if first and name != "version":
                raise ArtifactError(
                    f"{self.path} is not a Mender artifact (its first file is '{name}', "
                    "not 'version')",
                    "give the path of a .mender file written by mender-artifact",
                )
            first = False
            if not member.isfile():
                raise ArtifactError(f"{name}: not a regular file in the artifact", _REBUILD)
            self._read_member(outer, member)
        if first:
            raise ArtifactError(f"{self.path} is an empty tar, not a Mender artifact", _REBUILD)

    def _read_member(self, outer: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        if name == "version":
            self._read_version(_small(outer, member, self.path))
        elif name == "manifest":
            self.manifest_bytes = _small(outer, member, self.path)
            self.manifest = _parse_manifest(self.manifest_bytes, name)
        elif name == "manifest.sig":
            self.signature = _small(outer, member, self.path)
        elif name == "manifest-augment":
            self.augment = _parse_manifest(_small(outer, member, self.path), name)
        elif (head := _HEADER.match(name)) is not None:
            if not self.manifest_bytes:
                raise ArtifactError(f"{name} comes before the manifest in {self.path}", _REBUILD)
            raw = _small(outer, member, self.path)
            augmented = head.group(1) is not None
            self._check(name, hashlib.sha256(raw).hexdigest(), augmented=augmented)
            if augmented:
                self.header_augment = parse_header(raw, name)
            else:
                self.header, self.header_member = parse_header(raw, name), name
        elif (data := _DATA.match(name)) is not None:
            self._read_data(outer, member, int(data.group(1)))
        else:
            raise ArtifactError(f"{name}: unexpected file in the artifact", _REBUILD)

    def _read_version(self, body: bytes) -> None:
        try:
            info: Any = json.loads(body)
            self.format, self.version = str(info["format"]), int(info["version"])
        except (ValueError, KeyError, TypeError) as err:
            raise ArtifactError(
                f"{self.path}: 'version' is not Mender's version JSON", _REBUILD
            ) from err
        if self.format != "mender" or self.version not in (2, 3):
            raise ArtifactError(
                f"{self.path}: format '{self.format}' version {self.version} is not a "
                "Mender artifact this reader knows (mender, 2 or 3)",
                "write it with mender-artifact 3.x (format version 3)",
            )
        # The manifest comes after 'version': its checksum is compared in result().
        self.version_digest = hashlib.sha256(body).hexdigest()

    def _read_data(self, outer: tarfile.TarFile, member: tarfile.TarInfo, index: int) -> None:
        name = member.name
        if self.header is None:
            raise ArtifactError(f"{name} comes before the header", _REBUILD)
        raw = outer.extractfile(member)
        if raw is None:  # pragma: no cover - isfile() was checked
            raise ArtifactError(f"{name}: cannot be read", _REBUILD)
        if index in self.files:
            raise ArtifactError(f"{name}: a second data file for payload {index}", _REBUILD)
        found = self.files.setdefault(index, [])
        try:
            with closing(decompressed(raw, name)) as stream:
                with tarfile.open(fileobj=stream, mode="r|") as inner:
                    for entry in inner:
                        if entry.isfile():
                            found.append(self._hash_file(inner, entry, index))
                drain(stream)
        except ArtifactError:
            raise
        except BROKEN as err:
            raise ArtifactError(
                f"{name} in {self.path} is broken or truncated ({err})", _REBUILD
            ) from err

    def _hash_file(self, inner: tarfile.TarFile, entry: tarfile.TarInfo, index: int) -> PayloadFile:
        listed = f"data/{index:04d}/{entry.name}"
        handle = inner.extractfile(entry)
        digest, size = hashlib.sha256(), 0
        while handle is not None and (chunk := handle.read(_CHUNK)):
            digest.update(chunk)
            size += len(chunk)
        if size != entry.size:
            raise ArtifactError(f"{listed} is truncated in {self.path}", _REBUILD)
        self._check(listed, digest.hexdigest(), augmented=None)
        return PayloadFile(entry.name, size, digest.hexdigest())

    def _check(self, listed: str, actual: str, *, augmented: bool | None) -> None:
        """Compare with the manifest (`augmented=None`: whichever manifest lists it)."""
        self.seen.add(listed)
        sources = {False: self.manifest, True: self.augment}
        if augmented is None:
            expected = self.manifest.get(listed) or self.augment.get(listed)
        else:
            expected = sources[augmented].get(listed)
        if expected is None:
            raise ArtifactError(f"{listed} in {self.path} is not listed in its manifest", _REBUILD)
        if expected != actual:
            raise ArtifactError(
                f"{listed} in {self.path} does not match its manifest "
                f"(sha256 {actual[:16]}…, manifest says {expected[:16]}…)",
                _REBUILD,
            )

    def result(self) -> Artifact:
        if not self.manifest_bytes:
            raise ArtifactError(f"{self.path} has no manifest", _REBUILD)
        self._check("version", self.version_digest, augmented=False)
        if self.header is None:
            raise ArtifactError(
                f"{self.path} has no header.tar* (truncated?)", "rebuild or fetch it again"
            )
        missing = sorted((set(self.manifest) | set(self.augment)) - self.seen)
        if missing:
            raise ArtifactError(
                f"{missing[0]} is listed in the manifest of {self.path} but missing "
                "(artifact truncated?)",
                _REBUILD,
            )
        header, version = self.header, self.version
        types = header.payload_types(version)
        extra = sorted(set(self.files) - set(range(len(types))))
        if extra:
            raise ArtifactError(
                f"data/{extra[0]:04d} in {self.path} has no payload in header-info", _REBUILD
            )
        return Artifact(
            name=header.name(version),
            format=self.format,
            version=version,
            device_types=header.device_types(version),
            compression=split_suffix(self.header_member)[1],
            signed=self.signature is not None,
            signature=Signature.UNCHECKED,
            provides=header.provides() if version == 3 else {},
            depends=header.depends() if version == 3 else {},
            state_scripts=tuple(header.scripts),  # in header order, as mender-artifact lists them
            payloads=tuple(self._payload(i, t) for i, t in enumerate(types)),
        )

    def _payload(self, index: int, declared: str) -> Payload:
        assert self.header is not None
        info = self.header.type_info.get(index, {})
        provides = dict(info.get("artifact_provides") or {})
        depends = dict(info.get("artifact_depends") or {})
        kind = declared or str(info.get("type") or "")
        if self.header_augment is not None:
            # The augment header may override the type and add unsigned provides/depends.
            augment_types = self.header_augment.payload_types(3)
            if index < len(augment_types) and augment_types[index]:
                kind = augment_types[index]
            more = self.header_augment.type_info.get(index, {})
            provides.update(more.get("artifact_provides") or {})
            depends.update(more.get("artifact_depends") or {})
        return Payload(
            index=index,
            type=kind,
            provides=provides,
            depends=depends,
            clears_provides=tuple(info.get("clears_artifact_provides") or ()),
            meta_data=self.header.meta_data.get(index, {}),
            files=tuple(self.files.get(index, [])),
        )


def _members(outer: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """The outer tar's members; a broken tar header is an `ArtifactError`, not a traceback."""
    while True:
        try:
            member = outer.next()
        except BROKEN as err:
            raise ArtifactError(f"{path} is broken or truncated ({err})", _REBUILD) from err
        if member is None:
            return
        yield member


def _small(outer: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    if member.size > _SMALL_LIMIT:
        raise ArtifactError(
            f"{member.name} in {path} is {member.size} bytes, too big for it", _REBUILD
        )
    handle: IO[bytes] | None = outer.extractfile(member)
    try:
        body = handle.read() if handle is not None else b""
    except BROKEN as err:
        raise ArtifactError(
            f"{member.name} in {path} is broken or truncated ({err})", _REBUILD
        ) from err
    if len(body) != member.size:
        raise ArtifactError(f"{member.name} in {path} is truncated", _REBUILD)
    return body


def _parse_manifest(body: bytes, name: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise ArtifactError(f"{name} line {number} is not 'SHA256  NAME'", _REBUILD)
        entries[match.group(2)] = match.group(1)
    return entries
