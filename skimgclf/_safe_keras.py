"""Load a ``.keras`` network in safe mode, on a Keras whose safe mode has no known bypass.

Keras's ``safe_mode=True`` refuses the parts of a ``.keras`` file that run Python code when
loaded (``Lambda`` layers holding bytecode, serialized lambdas, ``TFSMLayer``), but older
releases let crafted files around it. Whoever can edit a model folder can also rewrite the
checksum skimgclf records for it, so this check is what keeps a loaded file from running code.
"""

import re

# Keras releases before these let a crafted .keras file run code despite safe_mode=True:
# CVE-2025-1550 (fixed in 3.9: a config naming any Python function, called with its arguments),
# CVE-2025-8747 and CVE-2025-9906 (3.11: Keras's own get_file and enable_unsafe_deserialization
# reached from a config), CVE-2026-1462 (3.14.0: TFSMLayer loading a TensorFlow SavedModel whose
# graph runs). 3.14.0 also stopped archive members from being extracted outside their folder.
MIN_KERAS = (3, 14, 0)


def load_network(path):
    """Load a Keras network file with Keras's safe mode forced on.

    Parameters
    ----------
    path : str or path-like
        A ``.keras`` file.

    Returns
    -------
    keras.Model
        The network, compiled as it was saved.

    Raises
    ------
    RuntimeError
        If the installed Keras is older than :data:`MIN_KERAS` (or its version cannot be
        read): its safe mode has known bypasses, so the file is not opened at all.
    Exception
        Whatever Keras raises for a file it refuses or cannot read, such as the ``ValueError``
        for a ``Lambda`` layer holding code; the caller names the file.
    """
    # Imported here, not at the top: importing Keras imports TensorFlow, which takes seconds,
    # and skimgclf needs neither until a network is used.
    from ._backend import keras

    check_keras_version(keras.__version__)
    from keras.src.saving.serialization_lib import SafeModeScope

    # safe_mode=True alone is not enough: once anything in this thread has called
    # keras.config.enable_unsafe_deserialization(), Keras lets that global setting override
    # the argument and runs the code. The scope sets the flag for this load and restores it.
    with SafeModeScope(True):
        return keras.saving.load_model(path, safe_mode=True)


def check_keras_version(version):
    """Refuse a Keras older than :data:`MIN_KERAS`.

    Only the release numbers count: a pre-release or nightly build of 3.14.0 (``3.14.0rc1``,
    ``3.14.0.dev20260101``) is taken as 3.14.0.

    Parameters
    ----------
    version : str
        A Keras version, as in ``keras.__version__``.

    Raises
    ------
    RuntimeError
        If ``version`` is older than :data:`MIN_KERAS` or does not start with a release number;
        the message says why that matters and how to upgrade.
    """
    match = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    release = tuple(int(part or 0) for part in match.groups()) if match else None
    if release is None or release < MIN_KERAS:
        minimum = ".".join(map(str, MIN_KERAS))
        raise RuntimeError(
            f"Keras {version} is installed, but skimgclf needs Keras >= {minimum} to load a "
            "model: the safe mode of older versions has known bypasses that run code from a "
            f'model file; upgrade it with: pip install --upgrade "keras>={minimum}"')
