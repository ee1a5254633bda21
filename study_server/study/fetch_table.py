"""This host's record of trial media requests, shared by every worker process of one server.

Why: gunicorn runs several worker processes, and a participant's requests land on any of them. The answer
save needs the first request of the trial's clip (``study_server.study.watching``); when another worker served
the clip, this process's own record (``watching.LocalFetches``) does not know it, and the save had to read
``media_fetches`` (one more database round trip: 1.67x the fast path's CPU per save, docs/benchmarks.md).
With ``-w 4`` that was about 3 saves in 4. This table lets a worker see what its siblings on the same host
served, without asking the database.

What: a fixed-size open-addressing table in a file mapped ``MAP_SHARED`` by every worker (on Linux under
``/dev/shm``, i.e. memory; ``study_server.study.watching.table_path`` picks the file). A file rather than
``multiprocessing`` shared memory because it works the same whether gunicorn imports the app before forking
(``--preload``: the mapping, opened lazily, is made in each worker - or inherited, which shares it too) or in
each worker, and needs no process to own it.

It is a cache of evidence, never the evidence itself: the database row (``media_fetches``, written by the
media route before this table) stays the source of truth, and every way this table can fail ends in the
database read, never in a cleared answer that the database would have flagged:

- a slot holds a key - 16 bytes of BLAKE2b over the participant's token and the trial's position, keyed with
  a digest of the database URL - so only evidence recorded for that very assignment (tokens are random and
  unique) and position, on that very database, can ever match; a different assignment, position or study
  server reads "unknown". The token rather than the assignment's id: both save paths and the media route
  have it before any database access, and unlike an id it is never given again, not even by a database
  that was dropped and made anew under the same URL;
- the time kept is the time of a real request for that key, written after the database committed the row
  whose ``first_requested_at`` is that time or earlier; races between processes (no lock is shared across
  processes) can lose a write or keep a later request's time, which can only make an answer look *less*
  watched (and then the database is asked), never more;
- each slot carries a checksum (BLAKE2b) of its contents: a torn read (a concurrent write), a flipped byte
  or a zeroed slot reads as "unknown";
- a full probe run evicts its oldest entry (the participant has most likely answered): a miss, i.e. the read;
- a file that cannot be created, mapped or checked (no space, wrong owner or permissions, another
  database's table, another format) is not used: every save then reads the database, as without the table.

Layout (little-endian): a 64-byte header - ``b"EMOFETCH"``, format version (u32), slot count (u32), probe
length (u32), the 16-byte database digest, zeros - then ``slots + PROBE - 1`` slots of 64 bytes (so a probe
run never wraps): key (16), first request in microseconds since the epoch, UTC (i64), bytes served (i64),
checksum of the previous 32 bytes (8), zeros (24). 65,536 slots (``FETCH_TABLE_SLOTS``) = 4 MiB, allocated
when the file is made (a sparse file on a full tmpfs would fault with SIGBUS on first write, not with an
error). A server with another slot count does not use the file (its header differs).
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import mmap
import os
import stat
import struct
import threading
import uuid

log = logging.getLogger(__name__)

MAGIC = b"EMOFETCH"
VERSION = 1
SLOT = 64
HEADER = 64
PROBE = 8
DEFAULT_SLOTS = 1 << 16
MAX_SLOTS = 1 << 24  # 1 GiB
_HEAD = struct.Struct("<8sIII16s")
_BODY = struct.Struct("<qq")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_US = dt.timedelta(microseconds=1)
_EMPTY_TAIL = bytes(SLOT - 40)


def database_digest(url: str) -> bytes:
    """16 bytes that name the database: a table made for one database is never read for another."""
    return hashlib.blake2b(url.encode(), digest_size=16, person=b"emostudy-db").digest()


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=8).digest()


class FetchTable:
    """An open table; ``open_table`` makes one. Reads take no lock; writes of one process are serialised."""

    def __init__(self, mm: mmap.mmap, digest: bytes, slots: int, path: str) -> None:
        self._mm = mm
        self._digest = digest
        self.slots = slots
        self.path = path
        self._lock = threading.Lock()

    def _key(self, token: str, position: int) -> tuple[bytes, int]:
        key = hashlib.blake2b(f"{token}/{position}".encode(), digest_size=16, key=self._digest).digest()
        return key, HEADER + (int.from_bytes(key[:8], "little") % self.slots) * SLOT

    def read(self, token: str, position: int) -> tuple[dt.datetime, int] | None:
        """(first request, bytes served) recorded for this trial, or None: not known here (ask the database)."""
        key, at = self._key(token, position)
        run = self._mm[at:at + PROBE * SLOT]
        found = None
        for i in range(0, PROBE * SLOT, SLOT):
            if run[i:i + 16] == key:
                body = run[i:i + 32]
                if _checksum(body) == run[i + 32:i + 40]:
                    first, nbytes = _BODY.unpack_from(body, 16)
                    if found is None or first < found[0]:  # two copies (a race): both real, the earlier counts
                        found = (first, nbytes)
        return None if found is None else (_EPOCH + found[0] * _US, found[1])

    def note(self, token: str, position: int, when: dt.datetime, nbytes: int) -> None:
        """Record a request served at ``when`` (call it after the database row is committed)."""
        key, at = self._key(token, position)
        micros = (when - _EPOCH) // _US
        with self._lock:
            run = self._mm[at:at + PROBE * SLOT]
            mine = free = oldest = None
            oldest_first = None
            for i in range(0, PROBE * SLOT, SLOT):
                body = run[i:i + 32]
                valid = _checksum(body) == run[i + 32:i + 40]
                if body[:16] == key:
                    if valid:
                        first, served = _BODY.unpack_from(body, 16)
                        micros, nbytes = min(first, micros), served + nbytes
                    mine = i  # a damaged copy of this key is overwritten with what is known now
                    break
                if not valid:
                    if free is None:
                        free = i  # empty, damaged, or being written by another process: free to take
                else:
                    first = _BODY.unpack_from(body, 16)[0]
                    if oldest_first is None or first < oldest_first:
                        oldest, oldest_first = i, first
            slot = mine if mine is not None else free if free is not None else oldest
            body = key + _BODY.pack(micros, nbytes)
            self._mm[at + slot:at + slot + SLOT] = body + _checksum(body) + _EMPTY_TAIL

    def close(self) -> None:
        self._mm.close()


def _expected_header(digest: bytes, slots: int) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, slots, PROBE, digest).ljust(HEADER, b"\0")


def table_size(slots: int) -> int:
    return HEADER + (slots + PROBE - 1) * SLOT


def open_table(path: str, digest: bytes, *, slots: int = DEFAULT_SLOTS) -> FetchTable:
    """Map the table at ``path`` for the database of ``digest``, making the file when there is none.

    Raises ``OSError`` or ``ValueError`` when the file cannot be used (the caller then goes without it).
    The file is made complete (allocated, header written) under a temporary name and then linked to
    ``path``, so no process ever maps a half-made table; of two processes making it at once, one link wins
    and both map the winner.
    """
    if not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"a table of {slots} slots: use 1 to {MAX_SLOTS}")
    size, header = table_size(slots), _expected_header(digest, slots)
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        _create(path, size, header)
        fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise ValueError(f"{path} belongs to another user")
        if info.st_mode & 0o077:
            raise ValueError(f"{path} is readable or writable by others (mode {info.st_mode & 0o777:o}); "
                             "remove it (the server makes it with mode 600)")
        if info.st_size != size:
            raise ValueError(f"{path} has {info.st_size} bytes, not the {size} of this table")
        # MAP_POPULATE (Linux): the 4 MiB are mapped now, not page by page in the saves that first touch them
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                       mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    if mm[:HEADER] != header:
        mm.close()
        raise ValueError(f"{path} is another database's table or another format")
    return FetchTable(mm, digest, slots, path)


def _create(path: str, size: int, header: bytes) -> None:
    temporary = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        allocate = getattr(os, "posix_fallocate", None)
        try:
            if allocate is None:
                raise OSError(errno.EOPNOTSUPP, "no posix_fallocate here")
            allocate(fd, 0, size)  # every page now, so that a write can never fault for space
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.pwrite(fd, bytes(size), 0)  # a file system without fallocate: write the zeros
        os.pwrite(fd, header, 0)
        os.close(fd)
        fd = -1
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker made it first: use theirs
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(temporary)
        except OSError:
            pass
