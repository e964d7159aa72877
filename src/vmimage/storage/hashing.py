"""The whole-file MD5 Azure stores as Content-MD5, computed while the upload runs.

MD5 is sequential, so it runs in its own thread walking the file in offset order while the
upload workers send chunks in any order. Holes are hashed as zeros from one preallocated zero
buffer, never read: the kernel would only copy zeros out of the page cache. Hashing those zeros
is still CPU work (about 450 MB/s on one core here, so 30 GiB costs about a minute); it is the
floor of a fresh upload with MD5, and hashlib releases the GIL, so it overlaps the uploads.

The hasher reads the data regions again rather than sharing the uploader's buffers, and the
uploader never runs more than ``window`` bytes of data ahead of it, so that second read comes
from the page cache and memory stays bounded whatever the disk's layout.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence

_ZEROS = memoryview(bytes(16 * 1024 * 1024))
_READ = 4 * 1024 * 1024


class SparseMd5(threading.Thread):
    """MD5 of ``size`` bytes of ``fd`` whose data lies in ``extents`` (zeros elsewhere)."""

    def __init__(self, fd: int, size: int, extents: Sequence[tuple[int, int]],
                 stop: threading.Event) -> None:
        super().__init__(name="vmimage-md5", daemon=True)
        self._fd = fd
        self._size = size
        self._extents = list(extents)
        self._halt = stop
        self._cond = threading.Condition()
        self.position = 0
        self.data_hashed = 0
        self.digest: bytes | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        """Hash in offset order; set :attr:`digest`, or :attr:`error` when reading fails."""
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            for start, end in self._extents:
                self._zeros(md5, start)
                pos = start
                while pos < end:
                    if self._halt.is_set():
                        return
                    data = os.pread(self._fd, min(_READ, end - pos), pos)
                    if not data:
                        raise OSError(5, f"file ended at {pos}, expected {self._size} bytes")
                    md5.update(data)
                    pos += len(data)
                    with self._cond:
                        self.position = pos
                        self.data_hashed += len(data)
                        self._cond.notify_all()
            self._zeros(md5, self._size)
            self.digest = md5.digest()
        except BaseException as exc:  # reported to the caller, which owns the output
            self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _zeros(self, md5: hashlib._Hash, until: int) -> None:
        pos = self.position
        while pos < until and not self._halt.is_set():
            n = min(len(_ZEROS), until - pos)
            md5.update(_ZEROS[:n])
            pos += n
            with self._cond:
                self.position = pos

    @property
    def finished(self) -> bool:
        """Done, failed or stopped."""
        return self.digest is not None or self.error is not None or not self.is_alive()

    def wait_for_data(self, hashed: int) -> None:
        """Block until at least ``hashed`` bytes of data are hashed (or hashing has ended)."""
        with self._cond:
            while self.data_hashed < hashed and self.is_alive() and not self._halt.is_set():
                self._cond.wait(0.5)
