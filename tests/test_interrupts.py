"""Ctrl-C during ``CNNClassifier.fit``: raised between batches, never inside TensorFlow."""

import os
import signal

import keras
import numpy as np
import pytest

from skimgclf import CNNClassifier

TINY = {"filters": (2,), "dense_units": 4, "epochs": 2, "batch_size": 10, "random_state": 0}


@pytest.fixture
def default_ctrl_c():
    """Python's own SIGINT handler, as a terminal's Ctrl-C finds it, wherever pytest started.

    A shell without job control starts background jobs with SIGINT ignored.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((40, 8, 8), dtype=np.float32), np.arange(40) % 2


class CtrlC(keras.callbacks.Callback):
    """Sends SIGINT to this process ``times`` times as training batch ``at`` begins."""

    def __init__(self, at, times=1):
        super().__init__()
        self.at, self.times = at, times
        self.began, self.ended, self.sent_all = [], [], False

    def on_train_batch_begin(self, batch, logs=None):
        self.began.append(batch)
        if len(self.began) - 1 == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)
            self.sent_all = True

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)


def test_ctrl_c_is_raised_between_batches_by_skimgclf(default_ctrl_c, images):
    probe = CtrlC(at=5)  # the second epoch's second batch (4 batches an epoch)
    with pytest.raises(KeyboardInterrupt) as excinfo:
        CNNClassifier(**TINY, callbacks=[probe]).fit(*images)
    # Raised from skimgclf's callback before the batch ran, not where the signal came in.
    assert probe.sent_all
    assert excinfo.traceback[-1].path.name == "_interrupts.py"
    assert probe.ended == [0, 1, 2, 3, 0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_raises_at_once(default_ctrl_c, images):
    probe = CtrlC(at=1, times=2)
    with pytest.raises(KeyboardInterrupt):
        CNNClassifier(**TINY, callbacks=[probe]).fit(*images)
    assert not probe.sent_all  # raised by the second signal, inside the callback sending it
    assert probe.ended == [0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_after_the_last_batch_is_raised_when_fit_ends(default_ctrl_c, images):
    class AtTheEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt) as excinfo:
        CNNClassifier(**TINY, callbacks=[AtTheEnd()]).fit(*images)
    assert excinfo.traceback[-1].path.name == "_interrupts.py"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_handler_of_the_callers_own_is_left_in_place(images):
    received = []

    def handler(signum, frame):
        received.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        clf = CNNClassifier(**TINY, callbacks=[CtrlC(at=1)]).fit(*images)
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert received == [signal.SIGINT]
    assert len(clf.history_["loss"]) == 2  # the caller's handler decided: training went on
