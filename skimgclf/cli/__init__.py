"""The ``skimgclf`` command: train, predict, tune, export and demo.

Parsing stays light so that ``skimgclf --help`` answers at once; TensorFlow is imported only by
a command that trains or predicts.
"""

import argparse
import re
import sys

from ._params import UsageError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
# The shell's status for a program stopped by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
# find_label_issues's default: each fold's model trains on four fifths of the images.
LABEL_ISSUE_FOLDS = 5


def main(argv=None):
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name.

    Returns
    -------
    int
        0 on success, 1 on an error in the data or files, 2 on a malformed command line,
        130 when interrupted by Ctrl-C.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse exits on --help (0) and on usage errors (2); return instead, so that
        # main() can be called in-process.
        return exit_.code
    if args.command == "demo" and args.data_dir is not None and not args.full:
        print("skimgclf demo: error: --data-dir is only read with --full", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "train" and args.cv is not None and not args.find_label_issues:
        print("skimgclf train: error: --cv is only read with --find-label-issues",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        _run(args)
    except UsageError as exc:
        if args.debug:
            raise
        print(f"skimgclf {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        print(f"skimgclf {args.command}: interrupted {exc}".rstrip(), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every failure is one line for the user; --debug shows the rest
        if args.debug:
            raise
        print(f"skimgclf: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _run(args):
    from . import _jobs as jobs

    console = jobs.Console(quiet=args.quiet)
    settings = list(getattr(args, "set", None) or [])
    if getattr(args, "epochs", None) is not None:
        settings.append(f"epochs={args.epochs}")
    if args.command == "demo":
        jobs.demo(args.workdir, full=args.full, data_dir=args.data_dir, settings=settings,
                  console=console)
    elif args.command == "export":
        jobs.export(args.model_dir, args.output, format=args.format, console=console)
    elif args.command == "predict":
        jobs.predict(args.test_csv, args.images, args.model_dir, args.output,
                     sample_submission=args.sample_submission, console=console)
    else:
        spec = jobs.TableSpec(path_column=args.path_column, label_column=args.label_column,
                              suffix=args.suffix, color_mode=args.color_mode,
                              target_size=tuple(args.target_size) if args.target_size else None)
        common = {"spec": spec, "validation_split": args.validation_split,
                  "settings": settings, "console": console}
        if args.command == "train":
            folds = (args.cv or LABEL_ISSUE_FOLDS) if args.find_label_issues else None
            jobs.train(args.train_csv, args.images, args.model_dir, resume=args.resume,
                       label_issue_folds=folds, **common)
        else:
            jobs.tune(args.train_csv, args.images, args.model_dir, grid=args.grid, cv=args.cv,
                      n_jobs=args.n_jobs, scheduler=args.scheduler, **common)


def _message(exc):
    # Messages that list places or files span lines; the user gets them as one.
    text = _cli_words(" ".join(line.strip() for line in str(exc).splitlines() if line.strip()))
    if isinstance(exc, (ValueError, OSError, ImportError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text} (run again with --debug for the traceback)"


# The library's messages name its parameters; the command line's user knows the options.
_CLI_WORDS = (
    (re.compile(r"\btarget_size=\(height, width\)"), "--target-size H W"),
    (re.compile(r"\bsuffix='([^']*)'"), r"--suffix \1"),
    (re.compile(r"\bvalidation_split=(\S+?)(?=[\s,;:]|$)"), r"--validation-split \1"),
    (re.compile(r"\bcv=(\d+)"), r"--cv \1"),
    (re.compile(r"(?<![-\w])(target_size|color_mode|validation_split|path_column|suffix|cv)\b"
                r"(?!=)"),
     lambda match: "--" + match[1].replace("_", "-")),
)


def _cli_words(text):
    """``text`` with the library's parameter names put as the options that set them."""
    for pattern, replacement in _CLI_WORDS:
        text = pattern.sub(replacement, text)
    return text


def build_parser():
    """Build the argument parser of the ``skimgclf`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="skimgclf",
        description="Image classification from a CSV of image names and a folder of images.",
        epilog="Run 'skimgclf COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bars or step messages; results and errors still show")
    common.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")

    network = argparse.ArgumentParser(add_help=False)
    network.add_argument("--epochs", type=_positive_int, metavar="N",
                         help="training epochs (shortcut for --set epochs=N)")
    network.add_argument("--set", action="append", metavar="NAME=VALUE",
                         help="any CNNClassifier parameter, e.g. --set filters=16,32 "
                              "--set dropout=0.3 (repeat the option for several)")

    table = argparse.ArgumentParser(add_help=False)
    table.add_argument("train_csv", metavar="TRAIN_CSV",
                       help="CSV with one row per training image: its name and its label")
    table.add_argument("--images", required=True, metavar="DIR",
                       help="folder of the images named in the CSV")
    table.add_argument("--model-dir", required=True, metavar="DIR",
                       help="folder to write the model and its report to (replaced whole)")
    table.add_argument("--path-column", metavar="COL",
                       help="column of image names (default: the first column)")
    table.add_argument("--label-column", default="label", metavar="COL",
                       help="column of labels (default: %(default)s)")
    table.add_argument("--suffix", default="", metavar="SUFFIX",
                       help="appended to names that lack it, e.g. .png for ids 1, 2, ...")
    table.add_argument("--color-mode", choices=("grayscale", "rgb", "rgba"),
                       help="channels to load (default: rgb if any image is in colour, else "
                            "grayscale)")
    table.add_argument("--target-size", type=_positive_int, nargs=2, metavar=("H", "W"),
                       help="resize every image to H x W pixels (default: keep the size when "
                            "all share one; else a backbone's native size, or the most common "
                            "size)")
    table.add_argument("--validation-split", type=_fraction, default=0.2, metavar="FRACTION",
                       help="stratified share of the images held out to validate "
                            "(default: %(default)s; 0 = none)")

    train = commands.add_parser(
        "train", parents=[table, network, common], help="train a model on a CSV of images",
        description="Train on TRAIN_CSV, report the accuracy on a stratified holdout, and save "
                    "the model, its settings and an HTML report in --model-dir.")
    train.add_argument("--resume", action="store_true",
                       help="continue the interrupted run of this same command from the "
                            "checkpoint it left in --model-dir")
    train.add_argument("--find-label-issues", action="store_true",
                       help="also rank the training images whose labels look wrong, from "
                            "out-of-fold predictions: costs --cv extra trainings of the "
                            "network; writes label_issues.csv and a section of the report")
    train.add_argument("--cv", type=_at_least_two, metavar="K",
                       help=f"with --find-label-issues: stratified folds, each one more "
                            f"training (default: {LABEL_ISSUE_FOLDS})")
    train.set_defaults(command="train")

    predict = commands.add_parser(
        "predict", parents=[common], help="write a submission for a CSV of images",
        description="Predict the images of TEST_CSV with a model written by 'skimgclf train' "
                    "and write the submission CSV.")
    predict.add_argument("test_csv", metavar="TEST_CSV",
                         help="CSV with one row per test image (its name column as in training)")
    predict.add_argument("--images", required=True, metavar="DIR",
                         help="folder of the images named in the CSV")
    predict.add_argument("--model-dir", required=True, metavar="DIR",
                         help="folder written by 'skimgclf train' or 'skimgclf tune'")
    predict.add_argument("--output", "-o", required=True, metavar="FILE",
                         help="submission CSV to write (its folder must exist)")
    predict.add_argument("--sample-submission", metavar="FILE",
                         help="CSV whose columns and row order the submission copies "
                              "(default: the name column and the label column, in TEST_CSV "
                              "order)")

    export = commands.add_parser(
        "export", parents=[common], help="write a model as one ONNX or TFLite file",
        description="Write the model of --model-dir as one ONNX or TFLite file that takes "
                    "8-bit images at the trained size and returns class probabilities, with "
                    "its labels and loader settings in its metadata and in OUTPUT.json beside "
                    "it: it runs with onnxruntime or LiteRT, without skimgclf or TensorFlow.")
    export.add_argument("--model-dir", required=True, metavar="DIR",
                        help="folder written by 'skimgclf train' or 'skimgclf tune'")
    export.add_argument("--format", choices=("onnx", "tflite"), default="onnx",
                        help="onnx (needs: pip install 'skimgclf[export]') or tflite "
                             "(default: %(default)s)")
    export.add_argument("--output", "-o", required=True, metavar="FILE",
                        help="file to write, ending in .onnx or .tflite (its folder must "
                             "exist)")

    tune = commands.add_parser(
        "tune", parents=[table, network, common], help="grid-search the network's parameters",
        description="Cross-validate every combination of --grid values, print the ranking, "
                    "then train the best combination as 'skimgclf train' does.")
    tune.add_argument("--grid", action="append", required=True, metavar="NAME=V1/V2",
                      help="candidate values of a CNNClassifier parameter, separated by '/' "
                           "(or ',' for a parameter that is not a tuple): --grid "
                           "filters=16,32/32,64 --grid dropout=0.25,0.5")
    tune.add_argument("--cv", type=_at_least_two, default=3, metavar="K",
                      help="stratified cross-validation folds (default: %(default)s)")
    tune.add_argument("--n-jobs", type=int, metavar="N",
                      help="candidates fitted in parallel (default: one at a time; with "
                           "--scheduler, one per worker)")
    tune.add_argument("--scheduler", metavar="ADDRESS",
                      help="fit the candidates on the workers of this running Dask scheduler, "
                           "e.g. tcp://10.0.0.5:8786 (needs: pip install 'skimgclf[dask]'); "
                           "--images must be a path every worker can read")

    demo = commands.add_parser(
        "demo", parents=[network, common], help="train and predict the embedded Fashion-MNIST",
        description="Write the Fashion-MNIST sample that ships with skimgclf in the competition "
                    "layout (train.csv + train/, test.csv + test/, sample_submission.csv), "
                    "train on it, predict the test images and report.")
    demo.add_argument("--workdir", metavar="DIR",
                      help="folder for the data, the model and the submission "
                           "(default: ./skimgclf-demo)")
    demo.add_argument("--full", action="store_true",
                      help="the full 70,000 Fashion-MNIST images instead of the sample "
                           "(needs the dataset files; no download)")
    demo.add_argument("--data-dir", metavar="DIR",
                      help="with --full: folder of the Fashion-MNIST files")
    return parser


def _version():
    from .. import __version__

    return __version__


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _at_least_two(text):
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"cross-validation needs 2 folds or more, got {value}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected 0 or more and less than 1, got {value}")
    return value
