"""The CSVs of the competition layout: read as text, checked, and matched to the image files.

Nothing here imports more than pandas, so every mistake in a CSV or a folder is reported in a
fraction of a second, before TensorFlow and the images are loaded.
"""

import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_SHOWN = 5
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class TableSpec:
    """How a CSV maps onto images: the columns, and how the loader turns names into pixels."""

    path_column: str | None = None
    label_column: str = "label"
    suffix: str = ""
    color_mode: str | None = None
    target_size: tuple | None = None


def read_table(path, what):
    """Read a CSV with every cell as text, exactly as spelled.

    No cell is taken for a missing value: labels and ids such as ``None``, ``NA``, ``nan`` or
    ``null`` stay what they are. An empty cell is the empty string, which the checks below
    refuse where a value is needed, naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{what} {path} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not a readable CSV: {exc}") from exc
    if table.empty:
        raise ValueError(f"{what} {path} has a header but no rows")
    return table


def require_columns(table, path, columns):
    """Refuse a ``table`` that lacks one of ``columns``, listing the columns it has."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = ", ".join(map(repr, table.columns))
        raise ValueError(f"{path}: no column {', '.join(map(repr, missing))}; columns found: "
                         f"{found}; name the right ones with --path-column / --label-column")


def require_values(column, path, need):
    """Refuse the blank cells of ``column``, naming their lines of the CSV ``path``."""
    empty = np.flatnonzero(column.str.strip().eq("").to_numpy())
    if len(empty):
        lines = ", ".join(str(i + 2) for i in empty[:_SHOWN])
        raise ValueError(f"{path}: {len(empty)} rows have no {column.name!r} (line {lines}); "
                         f"{need}")


def training_table(train_csv, spec):
    """Read the training CSV; return the table, its name column and its labels."""
    table = read_table(train_csv, "training CSV")
    path_column = spec.path_column or table.columns[0]
    require_columns(table, train_csv, [path_column, spec.label_column])
    require_values(table[path_column], train_csv, "every row must name an image: fill or drop "
                   "those rows")
    if path_column == spec.label_column:
        raise ValueError(f"{train_csv}: the path column and the label column are both "
                         f"{path_column!r}; set --path-column or --label-column")
    return table, path_column, labels(table[spec.label_column], train_csv)


def labels(column, path):
    """The labels of ``column``: ints where every label is an integer, else the text.

    Labels that would be told apart only by surrounding spaces or by how a number is written
    (``3`` and ``3.0``) are refused: they are almost always one class spelled two ways, and
    taken as written they would be two classes of which the network learns neither well.
    """
    require_values(column, path, "every training image needs a label")
    values = column.to_numpy(dtype=object)
    kinds = sorted(set(values), key=str)
    if len(kinds) < 2:
        raise ValueError(f"{path}: every row has the label {values[0]!r} in {column.name!r}; a "
                         "classifier needs at least two classes: check --label-column")
    _refuse_spellings(kinds, column, path)
    # Integer labels train and sort as integers (2 before 10), yet print back exactly as read.
    if all(_INTEGER.fullmatch(v) for v in kinds):
        return values.astype(np.int64)
    return values


def _refuse_spellings(kinds, column, path):
    spellings = defaultdict(list)
    for label in kinds:
        spellings[_meaning(label)].append(label)
    clashes = [group for group in spellings.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" and ".join(map(repr, group)) for group in clashes[:_SHOWN])
        raise ValueError(
            f"{path}: labels in {column.name!r} that differ only by spaces or by how a number "
            f"is written would be separate classes: {shown}. Spell each class one way in the "
            "CSV")


def _meaning(label):
    text = label.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    # "nan", "NaN" and "inf" are words here, not numbers written two ways.
    return number if math.isfinite(number) else text


def resolve_suffix(names, images, suffix, console):
    """The suffix that makes every name a file of ``images``, checked before any image loads.

    An explicit ``suffix`` is taken as given. Names without an extension take the one
    extension that every one of them has in the folder, which is said in one line; with
    several such extensions, or none, the names are refused.

    Raises
    ------
    ValueError
        If names do not match files, naming the first few and the fix.
    """
    files = _listing(names, images)
    hint = f" (with --suffix {suffix})" if suffix else ""
    if not suffix and not any(os.path.splitext(name)[1] for name in names):
        distinct = set(names)
        coverage = Counter(extension for name in distinct for extension in files.get(name, ()))
        complete = sorted(extension for extension, n in coverage.items() if n == len(distinct))
        if len(complete) > 1:
            raise ValueError(
                f"the names in the CSV have no extension, and every one of them is in "
                f"{images} as {' and as '.join(complete)}; choose with --suffix, e.g. "
                f"--suffix {complete[0]}")
        if complete:
            console.step(f"names have no extension; using {complete[0]}, found for all "
                         f"{len(names):,}")
            return complete[0]
        if coverage:
            suffix = coverage.most_common(1)[0][0]
            hint = (f". The names have no extension; most of them are there as {suffix}: add "
                    f"the missing files, or drop their rows")
        else:
            hint = (". The names have no file extension: set it with --suffix, e.g. "
                    "--suffix .png")
    missing = [name for name in names if not _exists(name, suffix, files)]
    if missing:
        shown = ", ".join(map(repr, missing[:_SHOWN]))
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise ValueError(f"{len(missing)} of {len(names)} images are missing from {images}: "
                         f"{shown}{more}{hint}")
    return suffix


def _listing(names, images):
    """Map each file stem in the folders that ``names`` point into to its extensions.

    Each folder is listed once. Names that the loader refuses (absolute, with ``..``) are left
    out: the loader names them.
    """
    images = Path(images)
    folders = {os.path.dirname(name) for name in names
               if not os.path.isabs(name) and ".." not in Path(name).parts}
    files = defaultdict(set)
    for folder in folders:
        try:
            entries = os.scandir(images / folder)
        except OSError:
            continue
        with entries:
            for entry in entries:
                stem, extension = os.path.splitext(entry.name)
                files[os.path.join(folder, stem) if folder else stem].add(extension)
    return files


def _exists(name, suffix, files):
    if os.path.isabs(name) or ".." in Path(name).parts:
        return True  # the loader refuses it, naming the row
    full = name if name.lower().endswith(suffix.lower()) else name + suffix
    stem, extension = os.path.splitext(full)
    return extension in files.get(stem, ())


def sample_order(sample_path, test_ids, test_csv, path_column, label_column):
    """The ids of the sample submission, its id column and its label column.

    Raises
    ------
    ValueError
        If the sample's ids are not exactly those of the test CSV.
    """
    sample = read_table(sample_path, "sample submission")
    id_column = path_column if path_column in sample.columns else sample.columns[0]
    others = [c for c in sample.columns if c != id_column]
    label_out = label_column if label_column in others else others[0] if len(others) == 1 else None
    if label_out is None or len(others) != 1:
        raise ValueError(f"{sample_path}: expected an id column and one label column, found "
                         f"{', '.join(map(repr, sample.columns))}")
    ids = sample[id_column]
    if test_ids.duplicated().any():
        dup = test_ids[test_ids.duplicated()].iloc[0]
        raise ValueError(f"{test_csv}: id {dup!r} appears more than once in {path_column!r}")
    unknown = ids[~ids.isin(test_ids)]
    absent = test_ids[~test_ids.isin(ids)]
    if len(unknown) or len(absent) or ids.duplicated().any():
        detail = []
        if len(unknown):
            detail.append(f"{len(unknown)} ids not in {test_csv} (first: {unknown.iloc[0]!r})")
        if len(absent):
            detail.append(f"{len(absent)} ids of {test_csv} missing (first: "
                          f"{absent.iloc[0]!r})")
        if ids.duplicated().any():
            detail.append(f"id {ids[ids.duplicated()].iloc[0]!r} repeated")
        raise ValueError(f"{sample_path} does not match {test_csv}: {'; '.join(detail)}")
    return ids, id_column, label_out
