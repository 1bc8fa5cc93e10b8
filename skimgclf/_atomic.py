"""Outputs that appear whole or not at all: written beside their target, then renamed over it.

A crash, a full disk or Ctrl-C mid-write leaves the previous file or folder (or none), never
half of one. Every writer of user-facing outputs (submission, report, model folder, CSVs of a
layout) goes through here.
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


def check_replaceable(folder, markers):
    """Refuse a ``folder`` that is a file, or holds files and none of ``markers``.

    Replacing a folder deletes what it held, so only an empty folder or one that skimgclf
    wrote (recognised by one of the ``markers`` file names) may be replaced.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder; choose another path")
    if (folder.is_dir() and any(folder.iterdir())
            and not any((folder / name).exists() for name in markers)):
        raise FileExistsError(f"{folder} holds files that skimgclf did not write (no "
                              f"{' or '.join(markers)}); choose a new or empty folder")


@contextmanager
def replacing_folder(folder, markers):
    """Yield a fresh folder beside ``folder``; on success it replaces ``folder`` whole.

    :func:`check_replaceable` guards ``folder`` first. On failure the fresh folder is removed
    and ``folder`` is left as it was.
    """
    folder = Path(folder)
    check_replaceable(folder, markers)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = _fresh_folder(folder, "new")
    try:
        yield stage
        _swap_in(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap_in(stage, folder):
    if not folder.exists():
        os.replace(stage, folder)
        return
    if _exchange(stage, folder):
        # The stage now holds the previous folder.
        shutil.rmtree(stage, ignore_errors=True)
        return
    # Two renames: a crash between them leaves the previous folder in the hidden trash.
    trash = _fresh_folder(folder, "old")
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


def _fresh_folder(beside, role):
    # mkdir, not mkdtemp: the model folder must get the user's umask, not mkdtemp's 0700.
    path = beside.with_name(f".{beside.name}.{role}.{uuid.uuid4().hex}")
    path.mkdir()
    return path
