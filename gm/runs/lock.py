"""One trainer per run, enforced by the OS: an exclusive ``flock`` on ``<run>/.lock``.

The lock is taken before anything is read for training (see gm.runs.session) and held until the
training ends. Why ``flock`` and not a pid in state.json: the kernel drops it the moment its holder
dies, however it dies (kill -9, a crash, an OOM kill), so a lock is never stale and no process has
to guess whether another is alive. A ``flock`` belongs to an open file description, so two
``open()`` calls of the same file conflict even inside one process; a table of the locks held by
this process refuses those too, on file systems whose flock is per process (NFS).

The file holds who holds the lock ({"pid", "host", "since"}, JSON) for the message of whoever is
refused; it is emptied on release and never deleted (deleting a lock file lets two holders lock two
different files). Like any open file, a held lock passes to a child forked without exec.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from gm.errors import GMError

LOCK_FILE = ".lock"
# A refused acquire tries again for this long: a probe (``holder``) holds the lock for microseconds,
# and a refusal must never be caused by one.
_RETRY_SECONDS = 0.05
# (st_dev, st_ino) of a lock file -> its holder in this process; weak, so that a lock whose owner
# object is forgotten (a session opened and dropped) is released when the object is collected.
_HELD: weakref.WeakValueDictionary[tuple[int, int], RunLock] = weakref.WeakValueDictionary()
_HELD_LOCK = threading.Lock()


def host_id() -> str:
    """This machine, as state.json and the lock file record it next to the training pid: a hash,
    so a run folder shared or pushed to the Hub does not carry the host's name."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


class RunLocked(GMError):
    """Another trainer holds the run; ``holder`` is what its lock file says (maybe empty)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def refusal(name: str, holder: dict[str, Any]) -> str:
    """The one sentence that tells who trains run `name`, from its lock file's holder record."""
    pid, host, since = holder.get("pid"), holder.get("host"), holder.get("since")
    if not isinstance(pid, int):
        return f"Run '{name}' is being trained by another process; stop it there first."
    where = ("on this machine" if host == host_id() else
             f"on another machine (host {host})" if isinstance(host, str) else "")
    if pid == os.getpid() and host == host_id():
        where = "(this one)"
    when = ""
    if isinstance(since, str):
        try:
            started = _dt.datetime.fromisoformat(since)
            when = " since " + started.strftime("%H:%M:%S" if started.date() == _dt.date.today()
                                                 else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            pass
    who = " ".join(p for p in (f"process {pid}", where) if p)
    there = "that job" if where == "(this one)" else "it there"
    return f"Run '{name}' is being trained by {who}{when}; stop {there} first."


class RunLock:
    """The exclusive training lock of one run folder; ``acquire`` raises :class:`RunLocked`
    (a GMError naming the holder) at once when another trainer holds it.

    >>> with RunLock(run_dir):     # or lock = RunLock(run_dir).acquire(); ...; lock.release()
    ...     train_it()
    """

    def __init__(self, run_dir: str | os.PathLike, name: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.name = name or self.run_dir.name
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (a no-op when this object holds it already); returns self."""
        with self._mutex:
            if self._fd is not None:
                return self
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise GMError(f"Cannot lock run '{self.name}' for training ({exc.strerror}); make the "
                              f"run folder writable or train a copy of it.") from None
            try:
                key = (os.fstat(fd).st_dev, os.fstat(fd).st_ino)
                with _HELD_LOCK:
                    mine = _HELD.get(key)
                    if mine is not None:
                        raise RunLocked(refusal(self.name, _read_holder(fd)), _read_holder(fd))
                    self._flock(fd)
                    _HELD[key] = self
                holder = {"pid": os.getpid(), "host": host_id(),
                          "since": _dt.datetime.now().isoformat(timespec="seconds")}
                data = (json.dumps(holder) + "\n").encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
            except BaseException:
                with _HELD_LOCK:
                    if _HELD.get(key) is self:
                        del _HELD[key]
                os.close(fd)
                raise
            self._fd, self._key = fd, key
            return self

    def _flock(self, fd: int) -> None:
        deadline = time.monotonic() + _RETRY_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    raise RunLocked(refusal(self.name, holder), holder) from None
                time.sleep(0.005)
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                raise GMError(f"Cannot lock run '{self.name}' for training: its file system does not "
                              f"support locks ({exc.strerror}); move the runs folder to a local disk.") from None

    def release(self) -> None:
        """Give the lock back (a no-op when not held); the lock file stays, emptied."""
        with self._mutex:
            fd, key, self._fd, self._key = self._fd, self._key, None, None
            if fd is None:
                return
            try:
                os.ftruncate(fd, 0)  # nobody holds it now: no stale name in a later refusal
            except OSError:
                pass
            with _HELD_LOCK:
                if _HELD.get(key) is self:
                    del _HELD[key]
                os.close(fd)  # closing the last descriptor of the open file drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock must not outlive its owner object
        try:
            self.release()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_dir)!r}, held={self.held})"


def holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who trains the run now ({"pid", "host", "since"}, maybe {} when unknown), or None when its
    lock is free: a run whose state.json says `running` and whose lock is free was interrupted.

    Probes with a shared lock held for microseconds; an acquire retries for longer than that, so a
    probe never makes a real start fail. Reads nothing else of the run.
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        try:
            st = os.fstat(fd)
            with _HELD_LOCK:
                if (st.st_dev, st.st_ino) in _HELD:
                    return _read_holder(fd)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        except OSError:
            return {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
