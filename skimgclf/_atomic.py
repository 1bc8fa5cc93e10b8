"""Outputs that appear whole or not at all: written beside their target, then renamed over it.

A crash, a full disk or Ctrl-C mid-write leaves the previous file or folder (or none), never
half of one. Every writer of user-facing outputs (submission, report, model folder, CSVs of a
layout) goes through here, folders through :func:`skimgclf._folders.replacing_folder`.
"""

import ctypes
import errno
import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def open_atomic(path, mode="wb", **open_kwargs):
    """Open a temporary file beside ``path``; on success it replaces ``path``, else vanishes.

    ``mode`` is ``"wb"`` or ``"w"``; other keyword arguments go to :func:`open`. The file is
    created with ``open(..., "x")``, so it gets the user's umask (mkstemp's would be 0600),
    and is synced to disk before the rename.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def swap_in(stage, folder):
    """Put the folder ``stage`` in the place of ``folder``, in one step where the system can."""
    if not folder.exists():
        os.replace(stage, folder)
        return
    if _exchange(stage, folder):
        # The stage now holds the previous folder.
        shutil.rmtree(stage, ignore_errors=True)
        return
    # Two renames: a crash between them leaves the previous folder in the hidden trash.
    trash = fresh_folder(folder, "old")
    os.replace(folder, trash / folder.name)
    try:
        os.replace(stage, folder)
    except BaseException:
        os.replace(trash / folder.name, folder)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
# The kernel or the file system cannot exchange (old Linux, some network file systems).
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def _exchange(first, second):
    """Swap two paths in one step (Linux's renameat2); False where the system cannot."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                 _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), os.fspath(first), None, os.fspath(second))


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True)


def fresh_folder(beside, role):
    """Create an empty hidden folder beside ``beside``, named for its ``role``."""
    # mkdir, not mkdtemp: the model folder must get the user's umask, not mkdtemp's 0700.
    path = beside.with_name(f".{beside.name}.{role}.{uuid.uuid4().hex}")
    path.mkdir()
    return path
