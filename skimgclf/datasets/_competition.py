"""Write arrays of images out in the competition layout users receive."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .._folders import replacing_folder


@dataclass(frozen=True)
class CompetitionLayout:
    """Paths of a competition layout written by :func:`export_competition_layout`."""

    root: Path
    train_csv: Path
    train_dir: Path
    test_csv: Path
    test_dir: Path
    sample_submission: Path


def export_competition_layout(x_train, y_train, directory, *, x_test=None, id_column="id",
                              label_column="label", suffix=".png", first_id=1):
    """Write images and labels as ``train.csv`` + ``train/``, ``test.csv`` + ``test/``.

    This is the layout of the "identify the apparel" and digit-recognition challenges: the CSVs
    hold bare ids (``1, 2, …``), image ``i`` is ``train/<i>.png``, test ids continue after the
    training ids, and ``sample_submission.csv`` lists the test ids with a placeholder label.

    Parameters
    ----------
    x_train : ndarray of shape (n, h, w) or (n, h, w, c), uint8
        Training images.
    y_train : array-like of shape (n,)
        Training labels, written verbatim to the ``label_column``.
    directory : str or path-like
        The folder to write. It is written whole: built beside its place and renamed into it
        once complete. An existing folder is replaced only when skimgclf wrote everything in
        it (an earlier layout); any other non-empty folder is refused.
    x_test : ndarray, default=None
        Test images; without them only the training half is written.
    id_column, label_column : str, default="id", "label"
        CSV column names.
    suffix : str, default=".png"
        File suffix; the CSVs hold ids without it. Any format PIL writes from the suffix works.
    first_id : int, default=1
        Id of the first training image.

    Returns
    -------
    CompetitionLayout
        The paths written (test paths are still returned when ``x_test`` is None, unwritten).

    Raises
    ------
    FileExistsError
        If ``directory`` is a file, or a folder holding files that skimgclf did not write.
    """
    x_train = np.asarray(x_train)
    if len(x_train) != len(y_train):
        raise ValueError(f"x_train has {len(x_train)} images but y_train has {len(y_train)} labels")
    return write_layout(directory, "layout", x_train, y_train,
                        None if x_test is None else np.asarray(x_test), save=_save,
                        suffix=suffix, id_column=id_column, label_column=label_column,
                        first_id=first_id)


def write_layout(directory, kind, train_images, labels, test_images, *, save, suffix,
                 id_column="id", label_column="label", first_id=1):
    """Write the competition layout whole; ``save(image, path)`` writes one image file.

    Returns the :class:`CompetitionLayout` (test paths unwritten without ``test_images``).
    """
    root = Path(directory)
    layout = CompetitionLayout(root, root / "train.csv", root / "train", root / "test.csv",
                               root / "test", root / "sample_submission.csv")
    labels = np.asarray(labels)
    train_ids = np.arange(first_id, first_id + len(train_images))
    with replacing_folder(root, kind) as stage:
        _write_images(train_images, train_ids, stage / layout.train_dir.name, suffix, save)
        _write_csv(pd.DataFrame({id_column: train_ids, label_column: labels}),
                   stage / layout.train_csv.name)
        if test_images is not None:
            test_ids = np.arange(train_ids[-1] + 1, train_ids[-1] + 1 + len(test_images))
            _write_images(test_images, test_ids, stage / layout.test_dir.name, suffix, save)
            _write_csv(pd.DataFrame({id_column: test_ids}), stage / layout.test_csv.name)
            _write_csv(pd.DataFrame({id_column: test_ids, label_column: labels[0]}),
                       stage / layout.sample_submission.name)
    return layout


def _write_images(images, ids, folder, suffix, save):
    folder.mkdir()
    for image, image_id in zip(images, ids, strict=True):
        save(image, folder / f"{image_id}{suffix}")


def _save(image, path):
    Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image
                    ).save(path)


def _write_csv(frame, path):
    frame.to_csv(path, index=False)
