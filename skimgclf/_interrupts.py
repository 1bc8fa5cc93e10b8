"""Ctrl-C during training, raised between batches rather than inside TensorFlow.

Python raises KeyboardInterrupt at whatever line the main thread is running when SIGINT comes.
During ``Model.fit`` that is mostly TensorFlow's own Python code around its C++ runtime, and an
exception there can leave the runtime's memory corrupt: ``skimgclf train`` was seen to abort
with ``free(): invalid next size`` instead of saying how to resume, its loader's worker
processes left running. While a network trains, a first Ctrl-C is therefore held until the
batch (or epoch-end work such as a checkpoint) in progress ends, then raised from a callback
before the next one, where unwinding is as safe as any callback's error; a second Ctrl-C before
then raises at once, for a batch that never ends.
"""

import signal
import threading
from contextlib import contextmanager

from ._backend import keras


class _RaisePendingInterrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt before the next batch, or at the epoch's end, after Ctrl-C.

    Batch *beginnings*: a callback with batch-end hooks stops Keras from dispatching those
    hooks asynchronously on backends that can.
    """

    def __init__(self):
        super().__init__()
        self.pending = False

    def _raise_if_pending(self, *args, **kwargs):
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    on_train_batch_begin = on_test_batch_begin = on_epoch_end = _raise_if_pending


@contextmanager
def interrupts_between_batches():
    """Hold Ctrl-C until a batch ends while the block trains; yields the callback to pass to fit.

    Only where Python's default Ctrl-C handler is in place, in the main thread: a handler of
    the caller's own, or Ctrl-C ignored (a job started in the background), is left as it is.
    """
    check = _RaisePendingInterrupt()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield check
        return

    def hold(signum, frame):
        if check.pending:
            raise KeyboardInterrupt
        check.pending = True

    signal.signal(signal.SIGINT, hold)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if check.pending:
        # Pressed after the last batch ended: the fit is over, and so is the caller's run.
        raise KeyboardInterrupt
