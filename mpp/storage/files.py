"""File access by URL, so the same code reads local disks and object storage.

Fragments carry fsspec-style URLs (``file:///data/x.parquet``, ``s3://bucket/x.parquet``).
pyarrow's filesystem layer resolves them (local, S3, GCS, HDFS natively; anything fsspec knows
through ``pyarrow.fs.PyFileSystem(FSSpecHandler(...))``), and every failure is turned into a
:class:`~mpp.errors.StorageError` that names the file.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from mpp.errors import StorageError


def to_uri(path: str | os.PathLike[str]) -> str:
    """A URL for ``path``: URLs pass through, local paths become absolute ``file://`` URLs."""
    text = os.fspath(path)
    if "://" in text:
        return text
    return Path(text).expanduser().resolve().as_uri()


def redact_uri(uri: str) -> str:
    """``uri`` with its password, if any, shown as ``***`` (for messages and listings)."""
    parsed = urlparse(uri)
    if parsed.password is None:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def local_path(uri: str) -> str | None:
    """The local filesystem path of a ``file://`` URL or plain path (None for remote URLs)."""
    if "://" not in uri:
        return uri
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" else None


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and in-filesystem path of ``uri``."""
    path = local_path(uri)
    if path is not None:
        return pafs.LocalFileSystem(), path
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec  # a scheme pyarrow does not know natively
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, path = fsspec.core.url_to_fs(uri)
        return PyFileSystem(FSSpecHandler(fs)), path


@contextlib.contextmanager
def storage_errors(uri: str, action: str = "read") -> Iterator[None]:
    """Turn library exceptions raised inside the block into a StorageError naming ``uri``."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError:
        raise StorageError("file not found (missing data file)", uri) from None
    except PermissionError as exc:
        raise StorageError(f"permission denied ({action}): {exc.strerror or exc}", uri) from None
    except (OSError, pa.ArrowException, ValueError, EOFError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "No such file" in text or "Path does not exist" in text:
            raise StorageError("file not found (missing data file)", uri) from None
        if action != "read":
            raise StorageError(f"cannot {action}: {text}", uri) from None
        raise StorageError(f"cannot read: file is truncated or corrupt ({text})", uri) from None


@contextlib.contextmanager
def open_output(uri: str) -> Iterator[pa.NativeFile]:
    """A new file at ``uri`` (parent directories created); errors name the file."""
    fs, path = resolve(uri)
    with storage_errors(uri, "write"):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as out:
            yield out


def file_size(uri: str) -> int:
    """Size of the file at ``uri`` in bytes (StorageError if it is missing)."""
    fs, path = resolve(uri)
    with storage_errors(uri):
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(path)
        return int(info.size)


class CountingReader(io.RawIOBase):
    """A read-only file wrapper that counts the bytes actually read through it.

    Used where a reader library does not say what it read (ORC): the figure is the real I/O.
    """

    def __init__(self, raw: pa.NativeFile):
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        memoryview(buffer)[:n] = data
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        self.bytes_read += len(data)
        return bytes(data)

    def close(self) -> None:
        self._raw.close()
        super().close()
