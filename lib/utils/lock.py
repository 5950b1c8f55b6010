"""A lock on an output folder, so that two training runs never write snapshots into the same folder.

The lock is a file ``<folder>/.lock`` made with O_EXCL, holding the owner's host, pid, process start time and
command line (JSON). A lock of this host whose process is gone (or whose pid now belongs to another process,
told apart by its start time) is stale and taken over; one of another host cannot be checked from here and is
cleared only by ``force=True`` (``train_net.py --force-unlock``).
"""
from __future__ import annotations

import fcntl
import json
import os
import os.path as osp
import socket
import sys
import time
from typing import Any, Dict, Optional

from utils.atomic import pid_alive

LOCK_NAME = '.lock'


class LockedError(RuntimeError):
    """The folder is locked by another run."""


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid apart."""
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(info: Dict[str, Any]) -> bool:
    pid = int(info.get('pid', -1))
    if not pid_alive(pid):
        return False
    started = info.get('start_time')
    return started is None or _start_time(pid) in (None, started)


class OutputLock:
    """``with OutputLock(folder): ...`` holds ``folder/.lock`` for this process; see the module's docstring."""

    def __init__(self, folder: str, force: bool = False, command: Optional[str] = None) -> None:
        self.folder = folder
        self.path = osp.join(folder, LOCK_NAME)
        self.force = force
        self.command = command if command is not None else ' '.join(sys.argv)
        self.held = False
        self.took_over: Optional[Dict[str, Any]] = None

    def _read(self) -> Dict[str, Any]:
        try:
            with open(self.path, encoding='utf-8') as f:
                info = json.load(f)
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> 'OutputLock':
        os.makedirs(self.folder, exist_ok=True)
        me = {'host': socket.gethostname(), 'pid': os.getpid(), 'start_time': _start_time(os.getpid()),
              'command': self.command, 'started': time.strftime('%Y-%m-%d %H:%M:%S')}
        # the check-and-take-over below runs under a flock of the folder itself, so that two runs of this host
        # that find the same stale lock cannot both take it
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            return self._acquire(me)
        finally:
            os.close(dir_fd)  # releases the flock

    def _acquire(self, me: Dict[str, Any]) -> 'OutputLock':
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self._read()
                same_host = info.get('host') == me['host']
                if info and not self.force and not (same_host and not _owner_alive(info)):
                    raise LockedError(
                        '{} is in use by another run (pid {} on {}, since {}: {}){}'.format(
                            self.folder, info.get('pid'), info.get('host'), info.get('started'),
                            info.get('command'),
                            '' if same_host else '; if that run is gone, pass --force-unlock'))
                self.took_over = info or {'pid': None}
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(me, f)
            self.held = True
            return self
        raise LockedError('{}: could not take the lock {} (another run keeps taking it)'.format(
            self.folder, self.path))

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._read().get('pid') == os.getpid():
                try:
                    os.remove(self.path)
                except OSError:
                    pass

    def __enter__(self) -> 'OutputLock':
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
