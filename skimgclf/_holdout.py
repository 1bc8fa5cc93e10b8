"""A Keras callback that scores a fixed validation set after every epoch."""

import keras


class HoldoutScore(keras.callbacks.Callback):
    """Add ``val_loss`` and ``val_accuracy`` on ``(x, y)`` to each epoch's logs.

    ``CNNClassifier.validation_split`` draws its holdout at random; the command line holds
    out a *stratified* one instead and still wants Keras's per-epoch validation curves.
    ``y`` must be encoded as the network's targets (``CNNClassifier.target_encoder``).
    """

    def __init__(self, x, y):
        super().__init__()
        self.x = x
        self.y = y

    def on_epoch_end(self, epoch, logs=None):
        # Keras appends its History and progress bar after the user's callbacks, so both see
        # the scores added here.
        # Batches larger than training's: the scores are the same, the pass is quicker.
        scores = self.model.evaluate(self.x, self.y, batch_size=256, verbose=0,
                                     return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in scores.items()})
