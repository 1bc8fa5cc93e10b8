"""Checkpoints of ``skimgclf train``: the last finished epoch, to resume after an interruption.

The checkpoint lives in the model folder, as ``<model-dir>/checkpoint/``: ``model.keras`` (the
network with its optimizer's state) and ``checkpoint.json`` (the epochs done, the history so
far, and a description of the run it belongs to). It is rewritten whole after every epoch, so a
crash leaves the previous epoch's; the finished model then replaces the model folder whole,
which takes the checkpoint away with it.
"""

import json
from pathlib import Path

import keras
import numpy as np

from ._atomic import replacing_folder
from .persistence import file_sha256

FOLDER = "checkpoint"
STATE_FILE = "checkpoint.json"
MODEL_FILE = "model.keras"
FORMAT = "skimgclf-checkpoint"
# Parameters that change neither the network nor its training.
_IGNORED_PARAMS = ("callbacks", "verbose")


def describe_run(train_csv, images, spec, validation_split, cnn):
    """What a resumed run must share with the interrupted one, as JSON values.

    The training CSV is identified by its content, so that the holdout, drawn from its labels
    with a fixed seed, is the same one.
    """
    params = {name: value for name, value in cnn.get_params().items()
              if name not in _IGNORED_PARAMS}
    run = {"train_csv_sha256": file_sha256(train_csv), "images": str(Path(images).resolve()),
           "spec": vars(spec), "validation_split": validation_split, "params": params}
    # Tuples come back from JSON as lists: compare what was written with what was read.
    return json.loads(json.dumps(run, default=str))


class Checkpoint(keras.callbacks.Callback):
    """Write the network, its optimizer and the history to ``folder`` after every epoch.

    ``history`` holds the epochs of an interrupted run that this one continues. Keras calls
    this after the callbacks before it in the list, so their additions to the logs (the
    holdout scores) are saved too.
    """

    def __init__(self, folder, run, history=None):
        super().__init__()
        self.folder = Path(folder)
        self.run = run
        self.history = {key: list(values) for key, values in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        with replacing_folder(self.folder, markers=(STATE_FILE,)) as stage:
            self.model.save(stage / MODEL_FILE)
            state = {"format": FORMAT, "epochs_done": epoch + 1,
                     "model_sha256": file_sha256(stage / MODEL_FILE), "run": self.run,
                     "history": self.history}
            (stage / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def read_state(folder):
    """The ``checkpoint.json`` of ``folder`` as a dict, or None where there is none."""
    try:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("format") == FORMAT else None


def load(folder, run):
    """The checkpoint's state and network, refused unless it belongs to ``run``.

    Returns ``(state, model)``; raises ValueError naming the problem and the fix.
    """
    folder = Path(folder)
    state = read_state(folder)
    if state is None:
        raise ValueError(f"nothing to resume: {folder} holds no checkpoint; run the same "
                         f"command without --resume to start training")
    differences = sorted(key for key in {*run, *state["run"]}
                         if run.get(key) != state["run"].get(key))
    if differences:
        raise ValueError(f"the checkpoint in {folder} belongs to a run with other "
                         f"{', '.join(differences)}; resume with the same data and options, "
                         f"or drop --resume to start over")
    model_path = folder / MODEL_FILE
    if not model_path.is_file() or file_sha256(model_path) != state["model_sha256"]:
        raise ValueError(f"{model_path} is missing or does not match {folder / STATE_FILE}; "
                         f"drop --resume to start over")
    return state, keras.saving.load_model(model_path, safe_mode=True)


def continue_training(cnn, state, model, x, y):
    """Train ``cnn`` for the epochs that the checkpointed run had left, from its network."""
    cnn._restore_fit(model, classes=np.unique(y), n_features_in=int(np.prod(x.shape[1:])),
                     image_shape=x.shape[1:], history=state["history"])
    done = state["epochs_done"]
    if done < cnn.epochs:
        cnn._fit(x, y, None, warm_start=True, epochs=cnn.epochs - done, initial_epoch=done)
    return cnn
