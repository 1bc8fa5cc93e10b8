"""The hand-written tutorial job, ported to today's Keras: the baseline of bench_end_to_end.py.

This is the Analytics Vidhya "identify the apparel" code as its readers run it: a tqdm loop of
``load_img`` over ``train.csv``, ``to_categorical``, ``train_test_split`` (20 %, not
stratified), the Sequential network, ``fit`` for 10 epochs with the split as validation data,
the same loop over ``test.csv``, ``predict`` and the submission CSV. Only what Keras 3 removed
is changed: ``grayscale=True`` is ``color_mode="grayscale"``, ``input_shape=`` is an ``Input``,
``predict_classes`` is the argmax of ``predict``. Timers around the stages are the only
additions; the last line printed is a JSON object of them.

Run ``python benchmarks/tutorial_fashion.py LAYOUT_DIR``, where LAYOUT_DIR holds train.csv,
train/, test.csv, test/ and sample_submission.csv; it writes LAYOUT_DIR/tutorial_submission.csv.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from keras import Input  # noqa: E402
from keras.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D  # noqa: E402
from keras.models import Sequential  # noqa: E402
from keras.utils import img_to_array, load_img, to_categorical  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from tqdm import tqdm  # noqa: E402


def main(layout):
    stages = {}
    os.chdir(layout)

    start = time.perf_counter()
    train = pd.read_csv("train.csv")
    train_image = []
    for i in tqdm(range(train.shape[0])):
        img = load_img("train/" + train["id"][i].astype("str") + ".png", target_size=(28, 28),
                       color_mode="grayscale")
        img = img_to_array(img)
        img = img / 255
        train_image.append(img)
    X = np.array(train_image)
    y = train["label"].values
    y = to_categorical(y)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=42, test_size=0.2)
    stages["load train"] = time.perf_counter() - start

    start = time.perf_counter()
    model = Sequential()
    model.add(Input(shape=(28, 28, 1)))
    model.add(Conv2D(32, kernel_size=(3, 3), activation="relu"))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Dropout(0.25))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dropout(0.5))
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="Adam", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=10, validation_data=(X_test, y_test), verbose=2)
    stages["train"] = time.perf_counter() - start

    start = time.perf_counter()
    test = pd.read_csv("test.csv")
    test_image = []
    for i in tqdm(range(test.shape[0])):
        img = load_img("test/" + test["id"][i].astype("str") + ".png", target_size=(28, 28),
                       color_mode="grayscale")
        img = img_to_array(img)
        img = img / 255
        test_image.append(img)
    test = np.array(test_image)
    stages["load test"] = time.perf_counter() - start

    start = time.perf_counter()
    prediction = np.argmax(model.predict(test, verbose=0), axis=1)
    sample = pd.read_csv("sample_submission.csv")
    sample["label"] = prediction
    sample.to_csv("tutorial_submission.csv", header=True, index=False)
    stages["predict + submission"] = time.perf_counter() - start
    print(json.dumps(stages))


if __name__ == "__main__":
    main(sys.argv[1])
