"""Grid searches on a real Dask cluster of two worker processes, against the serial search."""

import contextlib
import io
import os
import random
import socket
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skimgclf import CNNClassifier, ImageFolderLoader
from skimgclf.cli import main
from skimgclf.cli._distributed import check_workers, dask_backend

distributed = pytest.importorskip("dask.distributed")
psutil = pytest.importorskip("psutil")

# Keras's model.save (also behind pickling) converts TensorFlow variables in a way NumPy 2
# deprecates; that is between those two libraries.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

# The tiniest network that still learns something: each fit takes a second or two.
TINY = {"filters": (4,), "dense_units": 8, "epochs": 1, "random_state": 0}
GRID = {"learning_rate": [0.001, 0.01]}
# Log loss, not accuracy: it moves with the last bit of any weight, so equal scores mean
# identical networks.
SCORING = "neg_log_loss"


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each, which see no GPU; closed whatever happens."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  env={"CUDA_VISIBLE_DEVICES": ""}) as local:
        with distributed.Client(local) as client:
            pids = list(client.run(os.getpid).values())
        yield local
    assert not [pid for pid in pids if _alive(pid)], "worker processes left behind"


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def layout_table(small_layout):
    layout, *_ = small_layout
    return layout, pd.read_csv(layout.train_csv).iloc[:160]


def _scores(search):
    return np.array([search.cv_results_[f"split{i}_test_score"] for i in range(2)])


def test_seeded_fits_draw_nothing_from_pythons_global_random(monkeypatch):
    # A Dask worker's event loop draws from `random` while tasks run in another thread; a
    # seeded fit that drew from it too would depend on their timing.
    def refuse(*args, **kwargs):
        raise AssertionError("a seeded fit drew from Python's global random")

    x = np.random.default_rng(0).random((40, 8, 8), dtype=np.float32)
    y = np.arange(40) % 2
    for name in ("randint", "random", "getrandbits", "randrange", "choice", "shuffle"):
        monkeypatch.setattr(random, name, refuse)
    CNNClassifier(**{**TINY, "validation_split": 0.2}).fit(x, y).predict(x)


@pytest.mark.slow
def test_search_on_scattered_arrays_equals_the_serial_search(client, fashion_sample):
    (x_train, y_train), _ = fashion_sample
    x, y = x_train[:160] / np.float32(255), y_train[:160]
    serial = GridSearchCV(CNNClassifier(**TINY), GRID, cv=2, scoring=SCORING).fit(x, y)
    with joblib.parallel_config(backend="dask", scatter=[x, y]):
        spread = GridSearchCV(CNNClassifier(**TINY), GRID, cv=2, scoring=SCORING, n_jobs=-1)
        spread.fit(x, y)
    # Exactly equal: the same CPU, TensorFlow build and thread count in every process, and
    # seeded fits that depend on nothing else.
    np.testing.assert_array_equal(_scores(spread), _scores(serial))
    assert spread.best_params_ == serial.best_params_
    np.testing.assert_array_equal(spread.predict(x[:20]), serial.predict(x[:20]))


@pytest.mark.slow
def test_search_through_the_loader_on_a_shared_path_equals_the_serial_search(
        client, layout_table, tmp_path):
    layout, table = layout_table
    # Both workers write the decoded images to one cache folder, as on a shared filesystem.
    pipe = Pipeline([("load", ImageFolderLoader(layout.train_dir, path_column="id",
                                                suffix=".png", cache=tmp_path / "cache")),
                     ("cnn", CNNClassifier(**TINY))])
    grid = {f"cnn__{name}": values for name, values in GRID.items()}
    with joblib.parallel_config(backend="dask"):
        spread = GridSearchCV(pipe, grid, cv=2, scoring=SCORING, refit=False, n_jobs=-1)
        spread.fit(table[["id"]], table["label"])
    cache = tmp_path / "cache"
    assert len(list(cache.glob("*.pixels"))) == len(table) and not list(cache.glob("*.tmp"))
    # The serial search reads every image from the cache the workers wrote.
    serial = GridSearchCV(pipe, grid, cv=2, scoring=SCORING, refit=False)
    serial.fit(table[["id"]], table["label"])
    np.testing.assert_array_equal(_scores(spread), _scores(serial))


def _on_worker():
    import tensorflow as tf

    from skimgclf import CNNClassifier

    x = np.random.default_rng(0).random((20, 8, 8), dtype=np.float32)
    clf = CNNClassifier(filters=(2,), dense_units=0, epochs=1).fit(x, np.arange(20) % 2)
    return (os.environ.get("CUDA_VISIBLE_DEVICES"), tf.config.list_physical_devices("GPU"),
            clf.model_.weights[0].value.device)


@pytest.mark.slow
def test_workers_started_without_a_gpu_train_on_the_cpu(client):
    # The one-worker-per-GPU recipe sets CUDA_VISIBLE_DEVICES per worker process; here, where
    # there is no GPU, each worker is given none and must train on its CPU.
    for visible, gpus, device in client.run(_on_worker).values():
        assert visible == ""
        assert gpus == []
        assert "CPU" in device


def test_threaded_workers_are_refused_with_the_fix():
    check_workers({"tcp://a:1": 1, "tcp://b:1": 1}, "tcp://s:8786")
    with pytest.raises(ValueError, match=r"tcp://b:1 of tcp://s:8786 .* --nthreads 1"):
        check_workers({"tcp://a:1": 1, "tcp://b:1": 4}, "tcp://s:8786")


# The command line against the cluster's scheduler.


def _run_cli(*argv):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


def _tune_args(layout, model_dir):
    return ["tune", layout.train_csv, "--images", layout.train_dir, "--suffix", ".png",
            "--model-dir", model_dir, "--grid", "learning_rate=0.001/0.01", "--cv", "2",
            "--epochs", "1", "--set", "filters=4", "--set", "dense_units=8",
            "--set", "random_state=0", "--validation-split", "0", "-q"]


@pytest.mark.slow
def test_cli_tune_fits_the_candidates_on_the_cluster(cluster, client, small_layout, tmp_path):
    layout, *_ = small_layout
    with distributed.get_task_stream(client) as tasks:
        status, out, err = _run_cli(*_tune_args(layout, tmp_path / "model"), "--scheduler",
                                    cluster.scheduler_address)
    assert status == 0, err
    assert "learning_rate=0.01" in out.split("best: ")[0]
    # The candidates' fits ran as tasks on the workers.
    fits = [task for task in tasks.data if "fit_and_score" in str(task["key"])]
    assert fits and {task["worker"] for task in fits} <= set(cluster.scheduler_info["workers"])
    assert (tmp_path / "model" / "cli.json").exists()


def test_cli_tune_names_the_unreachable_scheduler(small_layout, tmp_path):
    import dask

    layout, *_ = small_layout
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{free.getsockname()[1]}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        status, _, err = _run_cli(*_tune_args(layout, tmp_path / "model"), "--scheduler",
                                  address)
    assert status == 1
    assert f"cannot reach the Dask scheduler at {address} within 1s" in err
    assert not (tmp_path / "model").exists()


def test_an_image_folder_the_workers_cannot_see_is_refused(cluster, tmp_path):
    with pytest.raises(ValueError, match="is not a folder on the Dask workers tcp://"):
        with dask_backend(cluster.scheduler_address, tmp_path / "elsewhere"):
            pass


def test_cli_tune_without_dask_names_the_extra(small_layout, tmp_path, monkeypatch):
    layout, *_ = small_layout
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    status, _, err = _run_cli(*_tune_args(layout, tmp_path / "model"), "--scheduler",
                              "tcp://127.0.0.1:8786")
    assert status == 1
    assert "pip install 'skimgclf[dask]'" in err
