"""The jobs behind the command line: train, predict, tune, export and demo, thin over the library.

Each job checks every input it can before the long work starts, so that a typo costs a fraction
of a second and a bad setting a few, not a training run; and writes its results whole or not at
all, into folders that are new, empty or its own.
"""

import contextlib
import json
import re
import sys
import tempfile
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import open_atomic
from .._folders import check_replaceable, claim, record_file, replacing_folder, verify
from ._formats import image_paths, settle_formats
from ._params import UsageError, classifier_parameters, parse_grid, parse_settings
from ._tables import (
    TableSpec,
    read_table,
    require_columns,
    require_values,
    resolve_suffix,
    sample_order,
    training_table,
)

SETTINGS_FILE = "cli.json"
LABEL_ISSUES_CSV = "label_issues.csv"
# Five epochs of the tutorial network over 3,200 images: ~70 s for the whole demo on 2 busy
# cores, validation accuracy ~0.85 (the docs' CLI reference has the measurement). User
# settings come after these and win.
DEMO_SETTINGS = ("epochs=5", "random_state=0")
# What `demo` writes in its folder, besides the folders it records there itself.
SUBMISSION_FILE = "submission.csv"


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job, carrying what the user can do next."""


def train(train_csv, images, model_dir, *, spec=None, validation_split=0.2, settings=(),
          class_names=None, resume=False, label_issue_folds=None, console=None):
    """Fit the pipeline on ``train_csv``, score a stratified holdout, save model and report.

    ``settings`` are ``name=value`` strings of CNNClassifier parameters (``--set``);
    ``class_names`` label the report (a sequence indexed by integer label, or a mapping).
    With ``label_issue_folds``, the network is also trained that many more times, out of
    fold, to rank the images whose labels look wrong (``--find-label-issues``).
    A checkpoint in ``model_dir`` after every epoch lets ``resume`` continue an interrupted
    run of the same command; Ctrl-C raises :class:`Interrupted` saying so.
    """
    console = console or Console()
    model_dir = Path(model_dir)
    table, spec, y, settings, _ = _check_training_inputs(
        train_csv, images, model_dir, spec or TableSpec(), settings, (), console)
    from . import _checkpoint

    cnn = _classifier(settings, console, validation_split=validation_split)
    _check_holdout(y, cnn)
    if label_issue_folds:
        from ..label_issues import check_folds

        check_folds(y, label_issue_folds)
    folder = model_dir / _checkpoint.FOLDER
    run = _checkpoint.describe_run(train_csv, images, spec, cnn)
    resumed = _checkpoint.load(folder, run) if resume else None
    state = _checkpoint.read_state(folder)
    if resumed is not None:
        console.step(f"resuming after epoch {state['epochs_done']} of {cnn.epochs} from {folder}")
    elif state is not None:
        console.warn(f"{folder} holds an interrupted run ({state['epochs_done']} epochs done); "
                     f"this run replaces it (stop now and add --resume to continue it instead)")
    loader = _loader(images, spec, None, console, eight_bit=bool(cnn.backbone))
    try:
        _fit_and_save(table, y, loader, cnn, model_dir, train_csv=train_csv, spec=spec,
                      class_names=class_names, console=console, run=run, resumed=resumed,
                      label_issue_folds=label_issue_folds)
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
    if output.is_dir():
        raise ValueError(f"--output {output} is a folder; name the CSV file to write, e.g. "
                         f"--output {output / SUBMISSION_FILE}")
    if not output.parent.is_dir():
        raise ValueError(f"cannot write {output}: folder {output.parent} does not exist; "
                         f"create it or choose another --output")
    cli_settings = _read_cli_settings(model_dir)
    path_column, label_column = cli_settings["path_column"], cli_settings["label_column"]
    table = read_table(test_csv, "test CSV")
    require_columns(table, test_csv, [path_column])
    require_values(table[path_column], test_csv, "every row must name an image: fill or drop "
                   "those rows")
    if label_column in table.columns:
        console.warn(f"{test_csv} has a {label_column!r} column; it is ignored")
    if sample_submission is not None:
        order, id_column, label_out = sample_order(sample_submission, table[path_column],
                                                   test_csv, path_column, label_column)
    if not Path(images).is_dir():
        raise ValueError(f"image folder {images} not found")
    suffix = resolve_suffix(table[path_column].tolist(), images, cli_settings["suffix"],
                            console)

    model = _load_model(model_dir)
    model.set_params(load__image_dir=images, load__suffix=suffix,
                     load__verbose=console.progress, cnn__verbose=console.keras_verbose)
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


def export(model_dir, output, *, format="onnx", console=None):
    """Write the model of ``model_dir`` as one ONNX or TFLite file, ``output``."""
    from ..export import check_output, description_path, export_model

    console = console or Console()
    # Before TensorFlow starts: a missing extra or a bad path costs a fraction of a second.
    check_output(output, format)
    _read_cli_settings(model_dir)
    model = _load_model(model_dir)
    console.step(f"exporting {model_dir} to {format}")
    path = export_model(model, output, format=format)
    console.result(f"model written to {path}, its labels and settings to "
                   f"{description_path(path)}")
    return path


def tune(train_csv, images, model_dir, *, grid, spec=None, cv=3, n_jobs=None,
         scheduler=None, validation_split=0.2, settings=(), console=None):
    """Grid-search CNNClassifier's parameters over the pipeline, then train the best as ``train``.

    ``grid`` holds ``name=candidate/candidate`` strings (``--grid``). With ``scheduler``, the
    address of a Dask scheduler, the candidates are fitted on its workers (all of them unless
    ``n_jobs`` says otherwise); the best is then trained here.
    """
    console = console or Console()
    model_dir = Path(model_dir)
    if scheduler is not None:
        from ._distributed import check_address

        check_address(scheduler)
    table, spec, y, settings, candidates = _check_training_inputs(
        train_csv, images, model_dir, spec or TableSpec(), settings, grid, console)
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, ParameterGrid
    from sklearn.pipeline import Pipeline

    cnn = _classifier(settings, console, validation_split=validation_split)
    for candidate in ParameterGrid(candidates):
        _check_settings(clone(cnn).set_params(**candidate), "--grid")
    param_grid = {f"cnn__{name}": values for name, values in candidates.items()}
    _check_holdout(y, cnn)
    # The folds are the search's validation: holding out images inside each would only
    # train the candidates on less.
    search_cnn = clone(cnn).set_params(validation_split=0.0)
    with tempfile.TemporaryDirectory(prefix="skimgclf-cache-") as cache:
        # Every fold and candidate reads the same files: decode them once.
        loader = _loader(images, spec, cache, console,
                         eight_bit=any(_backbones(settings, candidates)))
        search_loader, backend = loader, contextlib.nullcontext()
        if scheduler is not None:
            from ._distributed import dask_backend

            # The workers read the images themselves, perhaps on other machines: by an
            # absolute path, without this machine's temporary cache.
            search_loader = clone(loader).set_params(image_dir=Path(images).resolve(),
                                                     cache=None)
            backend = dask_backend(scheduler, search_loader.image_dir)
            n_jobs = -1 if n_jobs is None else n_jobs
        search = GridSearchCV(Pipeline([("load", search_loader), ("cnn", search_cnn)]),
                              param_grid, cv=cv, n_jobs=n_jobs, refit=False,
                              error_score="raise")
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
        _fit_and_save(table, y, loader, cnn.set_params(**best), model_dir,
                      train_csv=train_csv, spec=spec, class_names=None, console=console)


def demo(workdir=None, *, full=False, data_dir=None, settings=(), console=None):
    """Write Fashion-MNIST in the competition layout, then train and predict it."""
    from .. import datasets

    console = console or Console()
    workdir = Path(workdir) if workdir is not None else Path("skimgclf-demo")
    check_replaceable(workdir)
    if full:
        (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(data_home=data_dir)
    else:
        (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist_sample()
        settings = [*DEMO_SETTINGS, *settings]
    # Its own folder, so that a second demo may replace what the first wrote, and nothing else.
    claim(workdir, "demo")
    console.step(f"demo folder: {workdir.resolve()}")
    console.step(f"writing {len(x_train)} training and {len(x_test)} test images in the "
                 f"competition layout to {workdir / 'data'}")
    layout = datasets.export_competition_layout(x_train, y_train, workdir / "data",
                                                x_test=x_test)
    model_dir = workdir / "model"
    train(layout.train_csv, layout.train_dir, model_dir,
          spec=TableSpec(path_column="id", label_column="label", suffix=".png"),
          settings=settings, class_names=datasets.FASHION_MNIST_CLASSES, console=console)
    submission = predict(layout.test_csv, layout.test_dir, model_dir, workdir / SUBMISSION_FILE,
                         sample_submission=layout.sample_submission, console=console)
    record_file(workdir, SUBMISSION_FILE)
    # The demo knows the test labels that a competition keeps secret: show the real score.
    predicted = pd.read_csv(submission)["label"].to_numpy()
    console.result(f"test accuracy: {np.mean(predicted == y_test):.4f} ({len(y_test)} images)")


def _check_training_inputs(train_csv, images, model_dir, spec, settings, grid, console):
    """Every check of ``train`` and ``tune`` that needs neither TensorFlow nor a decoded image.

    Returns the table, the spec with its path column, suffix, colour mode and size settled,
    the labels, the parsed settings and the parsed grid.
    """
    check_replaceable(model_dir)
    table, path_column, y = training_table(train_csv, spec)
    if not Path(images).is_dir():
        raise ValueError(f"image folder {images} not found")
    names = table[path_column].tolist()
    suffix = resolve_suffix(names, images, spec.suffix, console)
    parameters = classifier_parameters()
    settings = parse_settings(settings, parameters)
    candidates = parse_grid(grid, parameters)
    spec = settle_formats(image_paths(names, suffix), images,
                          replace(spec, path_column=path_column, suffix=suffix),
                          _backbones(settings, candidates), console)
    return table, spec, y, settings, candidates


def _backbones(settings, candidates):
    """The backbones a run may train: None stands for the tutorial's network."""
    return {settings.get("backbone"), *candidates.get("backbone", ())}


def _check_holdout(y, cnn):
    # Before the images load: the holdout depends on the labels alone.
    if cnn.validation_split:
        from ..classifier import validation_rows

        validation_rows(y, cnn.validation_split, random_state=cnn.random_state)


def _fit_and_save(table, y, loader, cnn, model_dir, *, train_csv, spec, class_names, console,
                  run=None, resumed=None, label_issue_folds=None):
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from .._precision import resolve_precision
    from ..classifier import validation_rows
    from ..persistence import save_model
    from ..report import REPORT_HTML, render_report

    console.step(f"loading {len(table)} images from {loader.image_dir}")
    x = loader.fit_transform(table)
    if cnn.validation_split:
        fit_rows, val_rows = validation_rows(y, cnn.validation_split,
                                             random_state=cnn.random_state)
    else:
        fit_rows, val_rows = np.arange(len(y)), np.arange(0)
    precision, why = ((resumed.precision_, "as the interrupted run") if resumed is not None
                      else resolve_precision(cnn.precision, cnn.device))
    console.step(f"training on {len(fit_rows)} images, validating on {len(val_rows)}, "
                 f"in {precision} ({why})")
    if run is not None:
        from . import _checkpoint

        # The checkpoint lives in the model folder, which must be skimgclf's before it can.
        claim(model_dir, "model")
        cnn = resumed if resumed is not None else cnn
        cnn.set_params(verbose=console.keras_verbose, callbacks=[_checkpoint.Checkpoint(
            cnn, model_dir / _checkpoint.FOLDER, run,
            resumed.history_ if resumed is not None else None)])
    if resumed is None:
        cnn.fit(x, y)
    elif cnn.current_epoch < cnn.epochs:
        # A run stopped after its last epoch, while finding label issues say, has none left.
        cnn.partial_fit(x, y, epochs=cnn.epochs - cnn.current_epoch)
    # The callback holds the network; the saved parameters must not. Predicting the holdout
    # is quick, and its progress line would only clutter the output.
    cnn.set_params(callbacks=None, verbose=0)

    report_args = {"history": cnn.history_, "class_names": class_names}
    if len(val_rows):
        from ..explain import grad_cam

        x_val, y_val = x[val_rows], y[val_rows]
        proba = cnn.predict_proba(x_val)
        y_pred = cnn.classes_[np.argmax(proba, axis=1)]
        report_args.update(y_true=y_val, y_pred=y_pred, proba=proba, classes=cnn.classes_,
                           images=x_val, file_names=table[spec.path_column].to_numpy()[val_rows],
                           explain=partial(grad_cam, cnn))
    issues = None
    if label_issue_folds:
        issues = _label_issues(x, y, cnn, label_issue_folds, table[spec.path_column], console)
        report_args.update(label_issues=issues, label_issue_images=x)
    # The saved loader must not point at this run's cache folder, which may be temporary.
    model = Pipeline([("load", clone(loader).set_params(cache=None, verbose=False)),
                      ("cnn", cnn)])
    cli_settings = {"path_column": spec.path_column, "label_column": spec.label_column,
                    "suffix": spec.suffix}
    files = render_report(title=f"skimgclf: {Path(train_csv).name}", **report_args)
    with replacing_folder(model_dir, "model") as stage:
        save_model(model, stage)
        for name, data in files.items():
            (stage / name).write_bytes(data)
        (stage / SETTINGS_FILE).write_text(json.dumps(cli_settings, indent=2) + "\n")
        if issues is not None:
            issues.to_csv(stage / LABEL_ISSUES_CSV)
    if len(val_rows):
        console.result(f"validation accuracy: {np.mean(y_pred == y_val):.4f} "
                       f"({len(val_rows)} held-out images)")
    if issues is not None:
        console.result(f"likely mislabelled: {int(issues['is_label_issue'].sum())} of "
                       f"{len(issues)} training images, most suspicious first in "
                       f"{model_dir / LABEL_ISSUES_CSV}")
    console.result(f"model saved to {model_dir}")
    console.result(f"report: {model_dir / REPORT_HTML}")


def _label_issues(x, y, cnn, folds, names, console):
    """find_label_issues over the loaded images, indexed by their names as in the CSV."""
    from sklearn.base import clone

    from ..label_issues import find_label_issues

    console.step(f"finding likely mislabelled images: {folds} more trainings, each on "
                 f"{folds - 1}/{folds} of the {len(y)} images")
    # Each fold's network learns from all of its other folds, with no holdout of its own; on
    # a terminal one bar over the trainings stands in for Keras's bar of each.
    fold_cnn = clone(cnn).set_params(
        validation_split=0.0, callbacks=None,
        verbose=0 if console.progress else console.keras_verbose)
    issues = find_label_issues(
        fold_cnn, x, y, cv=folds, verbose=console.progress,
        random_state=0 if cnn.random_state is None else cnn.random_state)
    issues.index = pd.Index(names.to_numpy()[issues["row"].to_numpy()], name=names.name)
    return issues


def _read_cli_settings(model_dir):
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"model folder {model_dir} not found; write one with skimgclf train")
    # After that check: the checkpoint's module starts TensorFlow, which a typo must not wait for.
    from . import _checkpoint

    if (not (model_dir / SETTINGS_FILE).exists()
            and _checkpoint.read_state(model_dir / _checkpoint.FOLDER) is not None):
        raise ValueError(f"{model_dir} holds only the checkpoint of an interrupted "
                         f"training; finish it with skimgclf train --resume")
    try:
        verify(model_dir, [SETTINGS_FILE], what="a model folder written by skimgclf train")
        cli_settings = json.loads((model_dir / SETTINGS_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{model_dir} is not a model folder that skimgclf train wrote, as it "
                         f"was: {exc}; train the model again") from exc
    if not (isinstance(cli_settings, dict)
            and all(isinstance(cli_settings.get(key), str)
                    for key in ("path_column", "label_column", "suffix"))):
        raise ValueError(f"{model_dir / SETTINGS_FILE} is damaged: it must name the "
                         f"path_column, the label_column and the suffix; train the model again")
    return cli_settings


def _load_model(model_dir):
    from ..persistence import load_model

    try:
        return load_model(model_dir)
    except Exception as exc:
        raise ValueError(f"cannot load the model in {model_dir}: {exc}") from exc


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


def _classifier(settings, console, *, validation_split):
    from ..classifier import CNNClassifier

    cnn = CNNClassifier(verbose=console.keras_verbose, validation_split=validation_split)
    _check_settings(cnn.set_params(**settings), "--set")
    return cnn


def _check_settings(cnn, option):
    # scikit-learn's check of every parameter, made here as fit makes it: a bad value must
    # cost seconds, not the loading of the images.
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        cnn._validate_params()
    except InvalidParameterError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _loader(images, spec, cache, console, *, eight_bit):
    from ..loader import ImageFolderLoader

    # All cores decode: loads of thousands of images take half the time on two, and small
    # ones stay in this process (the loader starts no workers for under 64 images each).
    # Backbones take large colour images: as 8-bit pixels, scaled a batch at a time, they
    # take a quarter of the memory.
    pixels = {"dtype": "uint8", "rescale": None} if eight_bit else {}
    return ImageFolderLoader(Path(images), path_column=spec.path_column, suffix=spec.suffix,
                             color_mode=spec.color_mode, target_size=spec.target_size,
                             n_jobs=-1, cache=cache, verbose=console.progress, **pixels)
