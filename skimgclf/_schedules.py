"""The learning-rate schedules of ``CNNClassifier(lr_schedule=...)``, as Keras callbacks."""

import functools
import math

from ._backend import keras

# Smith and Topin's one-cycle policy (2018) as fastai and PyTorch's OneCycleLR run it: a rise
# from a tenth of the peak over the first 30 % of the steps, then half a cosine down to a
# thousandth of it.
_WARM_UP = 0.3
_START, _END = 1 / 10, 1 / 1000


def _one_cycle_rate(peak, progress):
    """The learning rate ``progress`` (0 to 1) of the way through a cycle peaking at ``peak``."""
    if progress < _WARM_UP:
        return peak * (_START + (1 - _START) * progress / _WARM_UP)
    fall = (progress - _WARM_UP) / (1 - _WARM_UP)
    return peak * (_END + (1 - _END) * (1 + math.cos(math.pi * fall)) / 2)


class _OneCycle(keras.callbacks.Callback):
    """Sets the optimizer's rate before each step, one cycle every ``epochs`` epochs.

    ``peak(epoch)`` is the cycle's peak during ``epoch`` (a backbone's fine-tuning peaks
    lower than its head's training). Epochs count from the network's first, so that
    ``partial_fit`` starts a new cycle every ``epochs`` epochs, as the cosine does.
    """

    def __init__(self, epochs, peak):
        super().__init__()
        self.epochs, self.peak = epochs, peak

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        # Without a known number of steps the rate moves once an epoch.
        steps = self.params.get("steps") or 1
        done = (self.epoch % self.epochs) * steps + min(batch, steps - 1)
        self.model.optimizer.learning_rate = _one_cycle_rate(self.peak(self.epoch),
                                                            done / (self.epochs * steps))

    def on_epoch_end(self, epoch, logs=None):
        # The rate of the epoch's last step, in history_ as the per-epoch schedules put theirs.
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


def _cosine_epoch_rate(epochs, peak, epoch):
    # Per epoch rather than per step, as it always was (one_cycle is the per-step one). The
    # last epoch still learns, at a small rate.
    return peak(epoch) * (1 + math.cos(math.pi * (epoch % epochs) / epochs)) / 2


def schedule_callback(name, epochs, peak):
    """The callback running schedule ``name`` ("cosine" or "one_cycle") over ``epochs``.

    ``peak(epoch)`` is the rate the schedule starts from ("cosine") or rises to ("one_cycle")
    in ``epoch``; both restart every ``epochs`` epochs counted from the network's first, so
    that ``partial_fit``, an epoch per call, follows the schedule that ``fit`` would.
    """
    if name == "cosine":
        return keras.callbacks.LearningRateScheduler(
            functools.partial(_cosine_epoch_rate, epochs, peak))
    return _OneCycle(epochs, peak)
