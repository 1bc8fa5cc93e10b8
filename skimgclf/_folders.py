"""Folders that skimgclf owns: proven by a manifest, replaced whole, checked on reading.

Every folder skimgclf writes whole (a model folder, a checkpoint, a report, a competition
layout) holds ``skimgclf-manifest.json``: a format tag, the kind of folder, and each entry
skimgclf put there, with every file's SHA-256. A folder is skimgclf's to replace, which deletes
what it held, only when each of its entries is listed there as what it is: a file with the
contents recorded, or a folder that is itself skimgclf's. So a folder that merely holds
something named ``checkpoint`` or ``estimator.json`` is refused, and so is one of skimgclf's
where a user has put a file or changed one: the refusal names those entries. Readers check the
files they read against the recorded checksums in the same way.
"""

import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from ._atomic import fresh_folder, open_atomic, swap_in

MANIFEST = "skimgclf-manifest.json"
FORMAT = "skimgclf-folder"
FORMAT_VERSION = 1
# What a run killed mid-write leaves beside an entry (replacing_folder's staging and trash
# folders, open_atomic's temporary files): skimgclf's own, so they do not make a folder foreign.
_LEFTOVER = re.compile(r"\.(?P<entry>.+)\.(?:(?:new|old)\.[0-9a-f]{32}|[0-9a-f]{32}\.tmp)")
_SHOWN = 5


def check_replaceable(folder):
    """Refuse ``folder`` unless it is absent, empty or skimgclf's own.

    Raises
    ------
    FileExistsError
        If ``folder`` is a file or a symbolic link, or holds an entry that its manifest does
        not list as what it is; the message names those entries and the fix.
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise FileExistsError(f"{folder} is a symbolic link; skimgclf replaces folders whole "
                              f"and would replace the link: give the folder it points to")
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file, not a folder; choose another path")
    problem = _foreign_entries(folder) if folder.exists() else None
    if problem:
        raise FileExistsError(
            f"{folder} holds files that skimgclf did not write ({problem}); skimgclf replaces "
            f"a folder only when it wrote everything in it, as its {MANIFEST} records: "
            "choose a new or empty folder, or move those files out")


def claim(folder, kind):
    """Make ``folder`` skimgclf's: create it, or give an empty one a manifest.

    A folder that is already skimgclf's is left as it is; any other is refused as by
    :func:`check_replaceable`. Folders later written inside it are recorded in its manifest.
    """
    folder = Path(folder)
    check_replaceable(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if read_manifest(folder) is None:
        _write_manifest(folder, kind, {})


@contextmanager
def replacing_folder(folder, kind):
    """Yield a fresh folder beside ``folder``; on success it replaces ``folder`` whole.

    ``folder`` must be absent, empty or skimgclf's (:func:`check_replaceable`), before the
    work and again just before the swap, since the work may take hours. The new folder gets a
    manifest of ``kind`` listing everything written into it; where the parent folder is
    skimgclf's, the new entry is recorded in the parent's manifest. On failure the fresh folder
    is removed and ``folder`` is left as it was.
    """
    folder = Path(folder)
    check_replaceable(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Recorded first: a run killed between here and the swap leaves an entry that the parent
    # lists but lacks, which is harmless, rather than one it does not list.
    _record_in_parent(folder)
    stage = fresh_folder(folder, "new")
    try:
        yield stage
        describe(stage, kind)
        check_replaceable(folder)
        swap_in(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def describe(folder, kind):
    """Write the manifest of ``folder``, listing every entry in it with its checksum.

    ``folder`` holds only what skimgclf wrote. Its sub-folders are listed without checksums, as
    each gets a manifest of its own: described in turn, unless written with one already.
    """
    folder = Path(folder)
    entries = {}
    for path in sorted(folder.iterdir()):
        if path.name == MANIFEST or _LEFTOVER.fullmatch(path.name):
            continue
        if path.is_dir() and not path.is_symlink():
            if read_manifest(path) is None:
                describe(path, "folder")
            check_replaceable(path)
            entries[path.name] = {"type": "folder"}
        elif path.is_file() and not path.is_symlink():
            entries[path.name] = {"type": "file", "sha256": file_sha256(path)}
        else:
            raise ValueError(f"{path} is neither a file nor a folder; skimgclf writes neither "
                             "links nor devices")
    _write_manifest(folder, kind, entries)


def record_file(folder, name):
    """Add the file ``name``, just written into skimgclf's ``folder``, to its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    manifest["entries"][name] = {"type": "file", "sha256": file_sha256(folder / name)}
    _write_manifest(folder, manifest["kind"], manifest["entries"])


def verify(folder, names, *, what):
    """Check that ``folder`` is skimgclf's and that the files ``names`` are as written.

    ``what`` says what the folder should be, for messages ("a model folder written by
    save_model"). Returns the manifest.

    Raises
    ------
    FileNotFoundError
        If the folder, its manifest or one of ``names`` is missing.
    ValueError
        If the manifest is damaged, does not list one of ``names``, or a file's contents differ
        from the checksum recorded; the message names the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected {what}")
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder} has no {MANIFEST}, so it is not {what}")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ValueError(f"{folder / MANIFEST} is damaged; expected {what}")
    for name in names:
        path = folder / name
        entry = manifest["entries"].get(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {folder} is not a complete folder "
                                    f"({what})")
        if entry is None or entry.get("type") != "file":
            raise ValueError(f"{path} is not among the files that {folder / MANIFEST} lists: "
                             f"it was not written with {folder.name}")
        if file_sha256(path) != entry.get("sha256"):
            raise ValueError(f"{path} does not match the checksum recorded in "
                             f"{folder / MANIFEST}: it was changed or damaged after it was "
                             "written")
    return manifest


def read_manifest(folder):
    """The manifest of ``folder`` as a dict, or None where it has none that skimgclf wrote."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("entries"), dict)
            and all(isinstance(entry, dict) for entry in manifest["entries"].values())):
        return None
    return manifest


def file_sha256(path):
    """The SHA-256 of the file at ``path``, as hex (read a megabyte at a time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _foreign_entries(folder):
    """Describe the entries of ``folder`` that skimgclf did not write; None when there are none."""
    names = sorted(os.listdir(folder))
    if not names:
        return None
    manifest = read_manifest(folder)
    if manifest is None:
        return f"it has no {MANIFEST}; its entries: {_names(names)}"
    listed = manifest["entries"]
    foreign, changed = [], []
    for name in names:
        match = _LEFTOVER.fullmatch(name)
        if name == MANIFEST or (match and match["entry"] in {*listed, MANIFEST}):
            continue
        path = folder / name
        kind = listed.get(name, {}).get("type")
        if kind == "file" and path.is_file() and not path.is_symlink():
            if file_sha256(path) != listed[name].get("sha256"):
                changed.append(name)
        elif kind == "folder" and path.is_dir() and not path.is_symlink():
            if _foreign_entries(path):
                changed.append(name)
        else:
            foreign.append(name)
    # Listed entries that are missing are no reason to refuse: nothing of the user's is in
    # them, and a run killed between two writes leaves one.
    problems = []
    if foreign:
        problems.append(f"entries it does not list: {_names(foreign)}")
    if changed:
        problems.append(f"entries changed since skimgclf wrote them: {_names(changed)}")
    return "; ".join(problems) or None


def _record_in_parent(folder):
    parent = folder.parent
    manifest = read_manifest(parent)
    # A staging folder (another replacing_folder's, written into) is not an entry: its
    # contents will be.
    if (manifest is None or _LEFTOVER.fullmatch(folder.name)
            or manifest["entries"].get(folder.name) == {"type": "folder"}):
        return
    manifest["entries"][folder.name] = {"type": "folder"}
    _write_manifest(parent, manifest["kind"], manifest["entries"])


def _write_manifest(folder, kind, entries):
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                "entries": entries}
    with open_atomic(Path(folder) / MANIFEST, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(manifest, indent=2) + "\n")


def _names(names):
    shown = ", ".join(map(repr, names[:_SHOWN]))
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
