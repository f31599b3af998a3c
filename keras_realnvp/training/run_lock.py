"""The lock of a training run's folder, `run.lock`: one run at a time per folder.

It is an `fcntl.flock` lock, which the OS releases when its process dies (even by SIGKILL),
so a killed run never blocks the `--resume` that follows; the file records the holder's
PID and host for the error message. Standard library only: a second process can take a
folder's lock without importing Keras.
"""

import datetime
import json
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock file's creation alone keeps a second run out
    fcntl = None

LOCK_FILE = "run.lock"


class RunFolderError(ValueError):
    """A run folder cannot be used as asked: in use, holding another run, or unwritable.

    Example:

    >>> issubclass(RunFolderError, ValueError)
    True
    """


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class RunLock:
    """The lock file `folder/run.lock`: one training run per folder.

    `acquire()` raises `RunFolderError` naming the PID and host of the run that holds it.
    The lock is the OS's (`fcntl.flock`): a process that dies, however, releases it, and a lock
    file it leaves behind is taken over by the next run. `release()` removes the file.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder) as lock:
    ...     try:
    ...         RunLock(folder).acquire()
    ...     except RunFolderError as error:
    ...         print(f"PID {os.getpid()}" in str(error))
    True
    >>> RunLock(folder).acquire().release()  # free again
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd = None

    def holder(self) -> dict:
        """What the lock file says about its holder (`pid`, `host`, `since`), `{}` if unreadable.

        Example:

        >>> import tempfile
        >>> with RunLock(tempfile.mkdtemp()) as lock:
        ...     lock.holder()["pid"] == os.getpid()
        True
        """
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # just created and not yet written, or already gone
            return {}

    def _refuse(self):
        holder = self.holder()
        who = f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')}, since {holder.get('since', '?')}"
        # Without flock a killed run's lock file stays: only a person can tell that it is stale.
        stale = "" if fcntl is not None else " If no run is using it, remove the lock file."
        raise RunFolderError(
            f"{self.folder} is in use by another training run ({who}; lock file {self.path}): a run folder takes "
            f"one run at a time. Wait for that run to end or stop it, or use another --output.{stale}"
        )

    def acquire(self) -> "RunLock":
        """Take the lock (creating the folder), or raise `RunFolderError` if a live run holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while self._fd is None:
            if fcntl is None:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    self._refuse()
            else:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    self._refuse()
                if not self._names(fd):  # its holder removed the file after we opened it: take a new one
                    os.close(fd)
                    continue
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode())
            self._fd = fd
        return self

    def _names(self, fd) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and let go of the lock (nothing if not held)."""
        if self._fd is None:
            return
        try:
            # Removed before the lock is let go: a run that takes the lock next creates its own file,
            # which this one then cannot remove by mistake.
            if fcntl is None or self._names(self._fd):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc):
        self.release()

