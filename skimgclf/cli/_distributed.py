"""The command line's grid search on a running Dask cluster (``skimgclf tune --scheduler``).

Every check that can fail is made before the first fit: Dask installed, the scheduler reached,
workers present, each worker one process per fit, the image folder readable on every worker.
"""

import os
import re
import socket
from contextlib import contextmanager

INSTALL_HINT = "pip install 'skimgclf[dask]'"
_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[^\]]+\]|[^:/\s\[\]]+):"
                      r"(?P<port>\d{1,5})/?")
# The schemes of a scheduler reached over the network.
_SCHEMES = ("tcp", "tls", "ws", "wss")


def check_address(address):
    """Refuse a malformed scheduler address, or one whose host is unknown, without Dask.

    Returns
    -------
    (str, int)
        The host and the port.
    """
    match = _ADDRESS.fullmatch(address.strip())
    if not match or (match["scheme"] or "tcp") not in _SCHEMES:
        raise ValueError(f"--scheduler {address} is not the address of a Dask scheduler; "
                         "give it as 'dask scheduler' prints it, e.g. tcp://10.0.0.5:8786")
    host, port = match["host"].strip("[]"), int(match["port"])
    try:
        socket.getaddrinfo(host, port)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"--scheduler {address}: no host is known as {host!r} "
                         f"({getattr(exc, 'strerror', None) or exc}); check the address") from exc
    return host, port


@contextmanager
def dask_backend(address, image_dir):
    """Run joblib's parallel work (a grid search's fits) on the workers of a Dask scheduler.

    ``image_dir`` must be an absolute path, which every worker must see as a folder: workers
    read the images themselves, from a shared filesystem.
    """
    try:
        import joblib
        from dask import config
        from dask.distributed import Client
    except ImportError as exc:
        raise ValueError(f"--scheduler needs Dask's distributed scheduler, which is not "
                         f"installed ({exc}); install it with: {INSTALL_HINT}") from exc
    from dask.utils import parse_timedelta

    timeout = config.get("distributed.comm.timeouts.connect")
    try:
        # A plain connection first: a Client that fails to connect hangs in its destructor
        # and prints a traceback long after the error.
        socket.create_connection(check_address(address), timeout=parse_timedelta(timeout)
                                 ).close()
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ValueError(
            f"cannot reach the Dask scheduler at {address} within {timeout}: {exc}. Check the "
            "address (as printed by 'dask scheduler'), or wait longer by setting "
            "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT, e.g. to 60s") from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as exc:
            raise ValueError(f"the Dask scheduler at {address} has no workers after "
                             f"{timeout}; start some with 'dask worker {address} "
                             "--nthreads 1'") from exc
        check_workers(client.ncores(), address)
        visible = client.run(os.path.isdir, os.fspath(image_dir))
        blind = sorted(worker for worker, is_dir in visible.items() if not is_dir)
        if blind:
            raise ValueError(
                f"image folder {image_dir} is not a folder on the Dask workers "
                f"{', '.join(blind)}: the workers read the images themselves, so --images "
                "must be a path every worker can read (a shared filesystem, mounted at the "
                "same path)")
        with joblib.parallel_config(backend="dask", client=client):
            yield client


def check_workers(workers, address):
    """Refuse workers that would run several fits in one process.

    ``workers`` maps each worker's address to its number of threads (``Client.ncores()``).
    """
    # Each fit clears Keras's global state and seeds process-wide generators, so fits sharing
    # a process would disturb each other (CNNClassifier's notes).
    threaded = sorted(worker for worker, nthreads in workers.items() if nthreads > 1)
    if threaded:
        raise ValueError(
            f"the Dask workers {', '.join(threaded)} of {address} run several threads each, "
            "but each network must be fitted in a process of its own; start the workers with "
            "one thread and as many processes as fits should run at once: 'dask worker "
            f"{address} --nthreads 1 --nworkers N'")
