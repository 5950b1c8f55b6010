"""Atomic file writes that leave nothing behind: a temp file beside the target, fsync, ``os.replace``.

- ``atomic_write(path, write_fn)``: ``write_fn(f)`` writes into a binary temp file in the target's folder; the
  temp file is removed on any failure (a full disk, an exception, Ctrl-C), and a full disk is reported as
  ``no space left on device while writing PATH``. A reader never sees half a file, and a failed write leaves
  the previous file as it was.
- ``clean_stale_temps(folder)``: removes the temp files of writers that were killed (kill -9, power loss):
  temp names carry the writer's host and pid, and a temp file of this host whose pid is gone is stale.
"""
from __future__ import annotations

import errno
import os
import os.path as osp
import re
import socket
import tempfile
from typing import Any, BinaryIO, Callable, List

_TEMP_RE = re.compile(r'^\.(?P<base>.+)\.tmp-(?P<host>[^-]*)-(?P<pid>\d+)-[A-Za-z0-9_]+$')


def _host() -> str:
    return re.sub(r'[^A-Za-z0-9_.]', '_', socket.gethostname()) or 'host'


def temp_prefix(path: str) -> str:
    """The name prefix of this process's temp files for ``path`` (``.<name>.tmp-<host>-<pid>-``)."""
    return '.{}.tmp-{}-{}-'.format(osp.basename(path), _host(), os.getpid())


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class DiskFullError(OSError):
    """No space left on the device while writing a file (the file named; the temp file already removed)."""


def atomic_write(path: str, write_fn: Callable[[BinaryIO], Any], mode: int = 0o666) -> None:
    """Write ``path`` atomically through ``write_fn(f)`` on a binary temp file in the same folder.

    The file gets ``mode`` less the umask (mkstemp would make it private). On failure the temp file is removed and
    ``path`` is untouched; ENOSPC becomes ``DiskFullError('no space left on device while writing PATH')``."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix='', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        full = _is_enospc(e) or (not isinstance(e, KeyboardInterrupt) and _nearly_full(folder))
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if full:
            raise DiskFullError(errno.ENOSPC, 'no space left on device while writing {}'.format(path)) from None
        raise


def _is_enospc(e: BaseException) -> bool:
    """ENOSPC, also when a library wrapped it (torch.save reports a short write as a RuntimeError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if 'No space left' in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _nearly_full(folder: str) -> bool:
    """Under 1 MiB free where the temp file lies (checked before it is removed): what a writer that wraps ENOSPC
    in its own error (torch.save: 'unexpected pos N vs M') met."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def clean_stale_temps(folder: str) -> List[str]:
    """Remove the temp files in ``folder`` left by writers on this host that no longer run; returns their paths.

    Temp files of live processes and of other hosts are left alone (another host's pid means nothing here)."""
    removed = []
    if not osp.isdir(folder):
        return removed
    host = _host()
    for name in os.listdir(folder):
        m = _TEMP_RE.match(name)
        if not m or m.group('host') != host or pid_alive(int(m.group('pid'))):
            continue
        p = osp.join(folder, name)
        try:
            os.unlink(p)
            removed.append(p)
        except OSError:
            pass
    return removed
