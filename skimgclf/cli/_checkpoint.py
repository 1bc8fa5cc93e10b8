"""Checkpoints of ``skimgclf train``: the last finished epoch, to resume after an interruption.

A checkpoint is ``<model-dir>/checkpoint/``: a model folder as ``save_model`` writes it (the
network with its optimizer's state, the history so far) plus ``run.json``, which describes the
run it belongs to. It is rewritten whole after every epoch, so a crash leaves the previous
epoch's; the finished model then replaces the model folder whole, which takes the checkpoint
away with it. Resuming is :func:`skimgclf.persistence.load_model` and ``partial_fit`` for the
epochs left.
"""

import json
from pathlib import Path

from .._backend import keras
from .._folders import file_sha256, read_manifest, replacing_folder, verify
from ..classifier import CNNClassifier
from ..persistence import load_model, save_model

FOLDER = "checkpoint"
RUN_FILE = "run.json"
# Parameters that change neither the network nor its training.
_IGNORED_PARAMS = ("callbacks", "verbose")


def describe_run(train_csv, images, spec, cnn):
    """What a resumed run must share with the interrupted one, as JSON values.

    The training CSV is identified by its content, so that the holdout, drawn from its labels
    with a fixed seed, is the same one.
    """
    params = {name: value for name, value in cnn.get_params().items()
              if name not in _IGNORED_PARAMS}
    run = {"train_csv_sha256": file_sha256(train_csv), "images": str(Path(images).resolve()),
           "spec": vars(spec), "params": params}
    # Tuples come back from JSON as lists: compare what was written with what was read.
    return json.loads(json.dumps(run, default=str))


class Checkpoint(keras.callbacks.Callback):
    """Save ``cnn`` as it is after every epoch to ``folder``, with the description ``run``.

    ``history`` holds the epochs of an interrupted run that this one continues.
    """

    def __init__(self, cnn, folder, run, history=None):
        super().__init__()
        self.cnn = cnn
        self.folder = Path(folder)
        self.run = run
        self.history = {key: list(values) for key, values in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        params = {**self.cnn.get_params(), "callbacks": None}
        snapshot = CNNClassifier.from_network(self.model, self.cnn.classes_,
                                              history=self.history, **params)
        with replacing_folder(self.folder, FOLDER) as stage:
            save_model(snapshot, stage)
            state = {"epochs_done": epoch + 1, "run": self.run}
            (stage / RUN_FILE).write_text(json.dumps(state, indent=2) + "\n")


def read_state(folder):
    """The checkpoint in ``folder`` as ``{"epochs_done": …, "run": …}``; None if there is none."""
    if read_manifest(folder) is None:
        return None
    try:
        state = json.loads((Path(folder) / RUN_FILE).read_text())
        state = {"epochs_done": int(state["epochs_done"]), "run": dict(state["run"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def load(folder, run):
    """The checkpointed classifier, refused unless it belongs to ``run``.

    Raises ValueError naming the problem and the fix.
    """
    folder = Path(folder)
    if read_state(folder) is None:
        raise ValueError(f"nothing to resume: {folder} holds no checkpoint; run the same "
                         f"command without --resume to start training")
    try:
        verify(folder, [RUN_FILE], what="the checkpoint of an interrupted skimgclf train")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{exc}; drop --resume to start over") from exc
    saved = read_state(folder)["run"]
    differences = sorted(key for key in {*run, *saved} if run.get(key) != saved.get(key))
    if differences:
        raise ValueError(f"the checkpoint in {folder} belongs to a run with other "
                         f"{', '.join(differences)}; resume with the same data and options, "
                         f"or drop --resume to start over")
    try:
        return load_model(folder)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{exc}; drop --resume to start over") from exc
