"""The SQLite store's revocation signal: 8 bytes in a file beside the database.

The processes sharing one SQLite file (``uvicorn --workers``, the command line) have
no channel to each other, but they share one machine: WAL mode already requires it,
its index being a memory-mapped ``-shm`` file. So this signal is a memory-mapped file
too, ``<database>-revocations``. ``revoked()`` writes 8 fresh random bytes into it
and ``version()`` reads them back: a memory read, no system call, no lock. Any change
counts, so writers need no lock (random bytes, not a counter: nothing to increment,
so no read-modify-write to race on) and a torn read, half old and half new, is only
one more change noticed. The page is shared through the kernel's page cache, so a
command that revokes and exits at once has still told every server.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading

logger = logging.getLogger("asgi_oauth")

_SIZE = 8
#: The mode SQLite gives a database file it creates (``SQLITE_DEFAULT_FILE_PERMISSIONS``).
_DEFAULT_MODE = 0o644


class FileSignal:
    """A ``RevocationSignal`` for every process that opens the same database file.

    The file is opened on first use, not when the store is made. One that cannot
    be opened (a read-only directory) leaves a signal of this process alone, not
    ``live``: the caches of the others fall back to their lifetimes.
    """

    __slots__ = ("_lock", "_map", "_view", "database", "live", "path")

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = database + "-revocations"
        self.live = True
        self._map: mmap.mmap | None = None
        #: The 8 bytes as one unsigned integer: reading it allocates nothing new.
        self._view: memoryview | None = None
        self._lock = threading.Lock()  # the writer thread signals, the event loop reads

    def version(self) -> object:
        view = self._view
        if view is None:
            view = self._open()
        return view[0]

    def revoked(self) -> None:
        view = self._view if self._view is not None else self._open()
        view[0] = int.from_bytes(os.urandom(_SIZE), "little")

    def close(self) -> None:
        """Unmap the file; ``version()`` keeps answering its last value."""
        with self._lock:
            if self._map is not None and self._view is not None:
                view, self._view = self._view, _private(self._view[0])
                view.release()
                self._map.close()
                self._map = None

    def _open(self) -> memoryview:
        with self._lock:
            if self._view is None:
                try:
                    self._map = _map_file(self.path, _mode_of(self.database))
                    self._view = memoryview(self._map).cast("Q")
                except OSError as exc:
                    logger.warning(
                        "cannot map %s (%s): revocations by other processes are seen only"
                        " when cached answers expire",
                        self.path,
                        exc,
                    )
                    self.live = False
                    self._view = _private(0)
            return self._view


def _private(value: int) -> memoryview:
    """A version only this process sees."""
    view = memoryview(bytearray(_SIZE)).cast("Q")
    view[0] = value
    return view


def _mode_of(database: str) -> tuple[int, int, int] | None:
    """The database file's mode and owner, which SQLite gives its own side files too."""
    try:
        found = os.stat(database)
    except FileNotFoundError:
        return None
    return found.st_mode & 0o777, found.st_uid, found.st_gid


def _map_file(path: str, like: tuple[int, int, int] | None) -> mmap.mmap:
    """Map ``path``, made 8 bytes long by whichever process comes first.

    Processes starting together may all find it missing: one creates it, and every
    one makes it 8 bytes long, which changes nothing once it is (so no process ever
    sees its content vanish).
    """
    mode = _DEFAULT_MODE if like is None else like[0]
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        fd = os.open(path, flags)
    else:
        try:
            if like is not None and os.name == "posix":
                os.fchmod(fd, mode)  # as the database's, whatever the umask
                if os.geteuid() == 0:  # as SQLite does: the database owner's, not root's
                    os.fchown(fd, like[1], like[2])
        except OSError:
            os.close(fd)
            raise
    try:
        if os.fstat(fd).st_size < _SIZE:
            os.ftruncate(fd, _SIZE)
        return mmap.mmap(fd, _SIZE)
    finally:
        os.close(fd)
