"""The jobs behind the command line: train, predict, tune and demo, thin over the library.

Each job checks every input it can before the long work starts, so that a typo costs a second,
not a training run; and writes its results whole or not at all.
"""

import contextlib
import json
import re
import sys
import tempfile
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import check_replaceable, open_atomic, replacing_folder
from ._cli_params import parse_grid, parse_settings

SETTINGS_FILE = "cli.json"
# Five epochs of the tutorial network over 3,200 images: ~70 s for the whole demo on 2 busy
# cores, validation accuracy ~0.85 (the docs' CLI reference has the measurement). User
# settings come after these and win.
DEMO_SETTINGS = ("epochs=5", "random_state=0")


class Console:
    """Where the jobs talk: steps to stderr, results to stdout, progress bars on a terminal.

    ``--quiet`` silences steps and progress bars, never results, warnings or errors.
    """

    def __init__(self, quiet=False):
        self.quiet = quiet
        # Keras draws its bar on stdout, the loader's on stderr: both must be terminals.
        self.progress = not quiet and sys.stdout.isatty() and sys.stderr.isatty()

    @property
    def keras_verbose(self):
        # Keras's bar redraws one line: right on a terminal, a mess in a log, where one line
        # per epoch reads better.
        return 0 if self.quiet else 1 if self.progress else 2

    def step(self, message):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def result(self, message):
        print(message, flush=True)

    def warn(self, message):
        print(f"skimgclf: warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TableSpec:
    """How a CSV maps onto images: the columns, and how the loader turns names into pixels."""

    path_column: str | None = None
    label_column: str = "label"
    suffix: str = ""
    color_mode: str = "grayscale"
    target_size: tuple | None = None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job, carrying what the user can do next."""


def train(train_csv, images, model_dir, *, spec=TableSpec(), validation_split=0.2, settings=(),
          class_names=None, resume=False, console=None):
    """Fit the pipeline on ``train_csv``, score a stratified holdout, save model and report.

    ``settings`` are ``name=value`` strings of CNNClassifier parameters (``--set``);
    ``class_names`` label the report (a sequence indexed by integer label, or a mapping).
    A checkpoint in ``model_dir`` after every epoch lets ``resume`` continue an interrupted
    run of the same command; Ctrl-C raises :class:`Interrupted` saying so.
    """
    from . import _checkpoint

    console = console or Console()
    model_dir = Path(model_dir)
    # Refused before training, not after it: a typo must cost a second, not a run.
    check_replaceable(model_dir, _model_markers())
    table, path_column, y = _training_table(train_csv, spec)
    cnn = _classifier(settings, console)
    loader = _loader(images, path_column, spec, None, console)
    folder = model_dir / _checkpoint.FOLDER
    run = _checkpoint.describe_run(train_csv, images, spec, validation_split, cnn)
    resumed = _checkpoint.load(folder, run) if resume else None
    state = resumed[0] if resumed else _checkpoint.read_state(folder)
    if resumed is not None:
        console.step(f"resuming after epoch {state['epochs_done']} of {cnn.epochs} from {folder}")
    elif state is not None:
        console.warn(f"{folder} holds an interrupted run ({state['epochs_done']} epochs done); "
                     f"this run replaces it (stop now and add --resume to continue it instead)")
    try:
        _fit_and_save(table, y, loader, cnn, model_dir, train_csv=train_csv,
                      label_column=spec.label_column, validation_split=validation_split,
                      class_names=class_names, console=console, run=run, resumed=resumed)
    except KeyboardInterrupt:
        state = _checkpoint.read_state(folder)
        if state is None or state["run"] != run:
            raise Interrupted("before the first epoch ended; nothing to resume") from None
        raise Interrupted(f"after epoch {state['epochs_done']} of {cnn.epochs}; the checkpoint "
                          f"is in {folder}: run the same command with --resume to continue"
                          ) from None


def predict(test_csv, images, model_dir, output, *, sample_submission=None, console=None):
    """Predict the images of ``test_csv`` and write the submission CSV to ``output``."""
    console = console or Console()
    output = Path(output)
    if not output.parent.is_dir():
        raise ValueError(f"cannot write {output}: folder {output.parent} does not exist; "
                         f"create it or choose another --output")
    cli_settings = _read_cli_settings(model_dir)
    path_column, label_column = cli_settings["path_column"], cli_settings["label_column"]
    table = read_table(test_csv, "test CSV")
    _require_columns(table, test_csv, [path_column])
    _require_values(table[path_column], test_csv, "every row must name an image: fill or drop "
                    "those rows")
    if label_column in table.columns:
        console.warn(f"{test_csv} has a {label_column!r} column; it is ignored")
    if sample_submission is not None:
        order, id_column, label_out = _sample_order(sample_submission, table[path_column],
                                                    test_csv, path_column, label_column)
    if not Path(images).is_dir():
        raise ValueError(f"image folder {images} not found")

    model = _load_model(model_dir)
    model.set_params(load__image_dir=images, load__verbose=console.progress,
                     cnn__verbose=console.keras_verbose)
    console.step(f"predicting {len(table)} images from {images}")
    predicted = model.predict(table)
    if sample_submission is None:
        submission = pd.DataFrame({path_column: table[path_column], label_column: predicted})
    else:
        by_id = pd.Series(predicted, index=table[path_column].to_numpy())
        submission = pd.DataFrame({id_column: order.to_numpy(),
                                   label_out: by_id.loc[order.to_numpy()].to_numpy()})
    with open_atomic(output, "w", newline="") as handle:
        submission.to_csv(handle, index=False)
    console.result(f"submission written to {output} ({len(submission)} rows)")
    return output


def tune(train_csv, images, model_dir, *, grid, spec=TableSpec(), cv=3, n_jobs=None,
         scheduler=None, validation_split=0.2, settings=(), console=None):
    """Grid-search CNNClassifier's parameters over the pipeline, then train the best as ``train``.

    ``grid`` holds ``name=candidate/candidate`` strings (``--grid``). With ``scheduler``, the
    address of a Dask scheduler, the candidates are fitted on its workers (all of them unless
    ``n_jobs`` says otherwise); the best is then trained here.
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    console = console or Console()
    model_dir = Path(model_dir)
    # Refused before training, not after it: a typo must cost a second, not a run.
    check_replaceable(model_dir, _model_markers())
    table, path_column, y = _training_table(train_csv, spec)
    cnn = _classifier(settings, console)
    param_grid = {f"cnn__{name}": values
                  for name, values in parse_grid(grid, cnn.get_params()).items()}
    with tempfile.TemporaryDirectory(prefix="skimgclf-cache-") as cache:
        # Every fold and candidate reads the same files: decode them once.
        loader = _loader(images, path_column, spec, cache, console)
        search_loader, backend = loader, contextlib.nullcontext()
        if scheduler is not None:
            from ._distributed import dask_backend

            # The workers read the images themselves, perhaps on other machines: by an
            # absolute path, without this machine's temporary cache.
            search_loader = clone(loader).set_params(image_dir=Path(images).resolve(),
                                                     cache=None)
            backend = dask_backend(scheduler, search_loader.image_dir)
            n_jobs = -1 if n_jobs is None else n_jobs
        search = GridSearchCV(Pipeline([("load", search_loader), ("cnn", cnn)]), param_grid,
                              cv=cv, n_jobs=n_jobs, refit=False, error_score="raise")
        n_candidates = int(np.prod([len(v) for v in param_grid.values()]))
        where = "" if scheduler is None else f" on the Dask cluster at {scheduler}"
        console.step(f"grid search: {n_candidates} candidates x {cv} folds on {len(table)} images"
                     f"{where}")
        try:
            with backend:
                search.fit(table, y)
        except BrokenProcessPool as exc:
            codes = re.search(r"exit codes of the workers are \{(.*?)\}", str(exc))
            raise ChildProcessError(
                f"a parallel worker process died during the grid search"
                f"{f' (exit code {codes.group(1)})' if codes else ''}, most often killed by the "
                f"system for want of memory; run again with fewer --n-jobs (--n-jobs 1 fits "
                f"one candidate at a time) or with a smaller --set batch_size") from exc
        console.result(ranked_table(search.cv_results_))
        best = {name.removeprefix("cnn__"): value for name, value in search.best_params_.items()}
        console.result(f"best: {_format_params(best)}")
        _fit_and_save(table, y, loader, cnn.set_params(**best), model_dir, train_csv=train_csv,
                      label_column=spec.label_column, validation_split=validation_split,
                      class_names=None, console=console)


def demo(workdir=None, *, full=False, data_dir=None, settings=(), console=None):
    """Write Fashion-MNIST in the competition layout, then train and predict it."""
    from . import datasets

    console = console or Console()
    workdir = Path(workdir) if workdir is not None else Path("skimgclf-demo")
    if full:
        (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(data_home=data_dir)
    else:
        (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist_sample()
        settings = [*DEMO_SETTINGS, *settings]
    console.step(f"demo folder: {workdir.resolve()}")
    console.step(f"writing {len(x_train)} training and {len(x_test)} test images in the "
                 f"competition layout to {workdir / 'data'}")
    layout = datasets.export_competition_layout(x_train, y_train, workdir / "data",
                                                x_test=x_test)
    model_dir = workdir / "model"
    train(layout.train_csv, layout.train_dir, model_dir,
          spec=TableSpec(path_column="id", label_column="label", suffix=".png"),
          settings=settings, class_names=datasets.FASHION_MNIST_CLASSES, console=console)
    submission = predict(layout.test_csv, layout.test_dir, model_dir,
                         workdir / "submission.csv",
                         sample_submission=layout.sample_submission, console=console)
    # The demo knows the test labels that a competition keeps secret: show the real score.
    predicted = pd.read_csv(submission)["label"].to_numpy()
    console.result(f"test accuracy: {np.mean(predicted == y_test):.4f} ({len(y_test)} images)")


def _training_table(train_csv, spec):
    table = read_table(train_csv, "training CSV")
    path_column = spec.path_column or table.columns[0]
    _require_columns(table, train_csv, [path_column, spec.label_column])
    _require_values(table[path_column], train_csv, "every row must name an image: fill or drop "
                    "those rows")
    if path_column == spec.label_column:
        raise ValueError(f"{train_csv}: the path column and the label column are both "
                         f"{path_column!r}; set --path-column or --label-column")
    return table, path_column, _labels(table[spec.label_column], train_csv)


def _fit_and_save(table, y, loader, cnn, model_dir, *, train_csv, label_column, validation_split,
                  class_names, console, run=None, resumed=None):
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from .persistence import save_model
    from .report import write_report

    if validation_split:
        fit_rows, val_rows = _stratified_holdout(y, validation_split, train_csv)
    else:
        fit_rows, val_rows = np.arange(len(y)), np.arange(0)
    console.step(f"loading {len(table)} images from {loader.image_dir}")
    x_fit = loader.fit_transform(table.iloc[fit_rows])
    x_val = loader.transform(table.iloc[val_rows]) if len(val_rows) else None
    y_fit, y_val = y[fit_rows], y[val_rows]
    console.step(f"training on {len(fit_rows)} images, validating on {len(val_rows)}")
    callbacks = cnn.callbacks
    added = []
    if x_val is not None:
        from ._holdout import HoldoutScore

        # Scoring the holdout after every epoch gives the report its validation curves. The
        # network's targets are indices into the sorted classes.
        encoded = np.searchsorted(np.unique(y_fit), y_val)
        added.append(HoldoutScore(x_val, encoded))
    if run is not None:
        from . import _checkpoint

        # Last, so that the checkpoint's history holds the holdout's scores too.
        added.append(_checkpoint.Checkpoint(model_dir / _checkpoint.FOLDER, run,
                                            resumed[0]["history"] if resumed else None))
    if added:
        cnn.set_params(callbacks=[*(callbacks or []), *added])
    if resumed is None:
        cnn.fit(x_fit, y_fit)
    else:
        _checkpoint.continue_training(cnn, *resumed, x_fit, y_fit)
    # The callback holds the validation images; the saved parameters must not. Predicting the
    # holdout is quick, and its progress line would only clutter the output.
    cnn.set_params(callbacks=callbacks, verbose=0)

    report_args = {"history": cnn.history_, "class_names": class_names}
    if x_val is not None:
        y_pred = cnn.predict(x_val)
        report_args.update(y_true=y_val, y_pred=y_pred, images=x_val)
    # The saved loader must not point at this run's cache folder, which may be temporary.
    model = Pipeline([("load", clone(loader).set_params(cache=None, verbose=False)),
                      ("cnn", cnn)])
    cli_settings = {"path_column": loader.path_column, "label_column": label_column}
    with replacing_folder(model_dir, _model_markers()) as stage:
        save_model(model, stage)
        report = write_report(stage, title=f"skimgclf: {Path(train_csv).name}", **report_args)
        (stage / SETTINGS_FILE).write_text(json.dumps(cli_settings, indent=2) + "\n")
    if x_val is not None:
        console.result(f"validation accuracy: {np.mean(y_pred == y_val):.4f} "
                       f"({len(val_rows)} held-out images)")
    console.result(f"model saved to {model_dir}")
    console.result(f"report: {model_dir / Path(report).name}")


def _read_cli_settings(model_dir):
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"model folder {model_dir} not found; write one with skimgclf train")
    path = model_dir / SETTINGS_FILE
    try:
        cli_settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        from ._checkpoint import FOLDER

        if not path.exists() and (model_dir / FOLDER).is_dir():
            raise ValueError(f"{model_dir} holds only the checkpoint of an interrupted "
                             f"training; finish it with skimgclf train --resume") from exc
        raise ValueError(f"{model_dir} is not a model folder written by skimgclf train: cannot "
                         f"read {SETTINGS_FILE} ({exc})") from exc
    if not (isinstance(cli_settings, dict)
            and all(isinstance(cli_settings.get(key), str)
                    for key in ("path_column", "label_column"))):
        raise ValueError(f"{path} is damaged: it must name the path_column and the "
                         f"label_column; train the model again")
    return cli_settings


def _load_model(model_dir):
    from .persistence import load_model

    try:
        return load_model(model_dir)
    except Exception as exc:
        raise ValueError(f"cannot load the model in {model_dir}: {exc}") from exc


def read_table(path, what):
    """Read a CSV as text, so that ids and labels keep their exact spelling."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} not found")
    try:
        table = pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{what} {path} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not a readable CSV: {exc}") from exc
    if table.empty:
        raise ValueError(f"{what} {path} has a header but no rows")
    return table


def ranked_table(cv_results):
    """Format GridSearchCV's ``cv_results_`` as a text table, best first."""
    frame = pd.DataFrame({
        "rank": cv_results["rank_test_score"],
        "mean accuracy": cv_results["mean_test_score"],
        "std": cv_results["std_test_score"],
        "fit time (s)": cv_results["mean_fit_time"],
        "parameters": [_format_params({k.removeprefix("cnn__"): v for k, v in p.items()})
                       for p in cv_results["params"]],
    }).sort_values("rank", kind="stable")
    return frame.to_string(index=False, float_format="{:.4f}".format,
                           formatters={"fit time (s)": "{:.1f}".format})


def _format_params(params):
    return " ".join(f"{name}={_format_value(value)}" for name, value in params.items())


def _format_value(value):
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _classifier(settings, console):
    from .classifier import CNNClassifier

    cnn = CNNClassifier(verbose=console.keras_verbose)
    return cnn.set_params(**parse_settings(settings, cnn.get_params()))


def _loader(images, path_column, spec, cache, console):
    from .loader import ImageFolderLoader

    images = Path(images)
    if not images.is_dir():
        raise ValueError(f"image folder {images} not found")
    # All cores decode: loads of thousands of images take half the time on two, and small
    # ones stay in this process (the loader starts no workers for under 64 images each).
    return ImageFolderLoader(images, path_column=path_column, suffix=spec.suffix,
                             color_mode=spec.color_mode, target_size=spec.target_size,
                             n_jobs=-1, cache=cache, verbose=console.progress)


def _require_columns(table, path, columns):
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = ", ".join(map(repr, table.columns))
        raise ValueError(f"{path}: no column {', '.join(map(repr, missing))}; columns found: "
                         f"{found}; name the right ones with --path-column / --label-column")


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _require_values(column, path, need):
    """Refuse the blank cells of ``column``, naming their lines of the CSV ``path``."""
    empty = np.flatnonzero(column.isna().to_numpy())
    if len(empty):
        lines = ", ".join(str(i + 2) for i in empty[:5])
        raise ValueError(f"{path}: {len(empty)} rows have no {column.name!r} (line {lines}); "
                         f"{need}")


def _labels(column, path):
    _require_values(column, path, "every training image needs a label")
    values = column.to_numpy(dtype=object)
    if len(set(values)) < 2:
        raise ValueError(f"{path}: every row has the label {values[0]!r} in {column.name!r}; a "
                         "classifier needs at least two classes: check --label-column")
    # Integer labels train and sort as integers (2 before 10), yet print back exactly as read.
    if all(_INTEGER.fullmatch(v) for v in values):
        return values.astype(np.int64)
    return values


def _stratified_holdout(y, fraction, path):
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise ValueError(f"--validation-split must be between 0 and 1 (0 = no holdout), "
                         f"got {fraction}")
    try:
        fit_rows, val_rows = train_test_split(np.arange(len(y)), test_size=fraction,
                                              stratify=y, random_state=0)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot hold out a stratified {fraction:g} of {len(y)} "
                         f"images: {exc} Add images of the rarest classes or change "
                         f"--validation-split") from exc
    # A large fraction can hold out every image of a rare class: the network would never see
    # it, and could not be scored on it.
    unseen = sorted(set(y[val_rows].tolist()) - set(y[fit_rows].tolist()), key=str)
    if unseen:
        raise ValueError(f"{path}: holding out {fraction:g} of the images leaves no training "
                         f"image of class {', '.join(map(repr, unseen[:5]))}; lower "
                         f"--validation-split or add images of that class")
    return fit_rows, val_rows


def _sample_order(sample_path, test_ids, test_csv, path_column, label_column):
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


def _model_markers():
    # A folder written by `train` or by `save_model`, or holding the checkpoint of an
    # interrupted `train`, is ours to replace.
    from ._checkpoint import FOLDER
    from .persistence import ESTIMATOR_FILE

    return (SETTINGS_FILE, ESTIMATOR_FILE, FOLDER)
