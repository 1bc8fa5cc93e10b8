"""Parse the command line's ``--set name=value`` and ``--grid name=v1/v2`` into parameters."""

import ast
from importlib.util import find_spec
from pathlib import Path


class UsageError(ValueError):
    """A malformed command line: reported in one line with exit status 2."""


def parse_value(text, *, sequence=False):
    """Turn the text of one value into ``None``, a bool, an int, a float, a str or a tuple.

    ``"16,32"`` becomes ``(16, 32)``; with ``sequence`` (the parameter's default is a tuple) a
    single item becomes a one-item tuple too, so that ``filters=16`` means ``(16,)``. Text in
    brackets or braces is a Python literal, for nested tuples such as the blocks of
    ``filters``, ``"((32, 32), (64, 64))"``, or the amounts of ``augment``,
    ``"{'rotation': 0.1, 'zoom': 0.1}"``.
    """
    if text.strip().startswith(("(", "[", "{")):
        value = _parse_literal(text.strip())
        # "(64)" is 64 to Python, but a tuple parameter means the one-item tuple.
        return (value,) if sequence and not isinstance(value, tuple) else value
    items = [_parse_scalar(item.strip()) for item in text.split(",")] if text.strip() else []
    if sequence or len(items) > 1:
        return tuple(items)
    return items[0] if items else ""


def _parse_literal(text):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise UsageError(f"{text!r} is not a Python literal; write tuples as in "
                         f"'((32, 32), (64, 64))', quoted for the shell") from exc
    return _as_tuples(value)


def _as_tuples(value):
    # Lists become tuples, as the estimators' tuple parameters expect.
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


def _parse_scalar(text):
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def classifier_parameters():
    """CNNClassifier's parameters and their defaults, read from its source.

    Importing the classifier starts TensorFlow, which takes seconds; reading the signature of
    its ``__init__`` from the source lets ``--set`` and ``--grid`` be checked at once. Where
    the source cannot be read (an installation of compiled files only), the class is imported.

    Returns
    -------
    dict
        Parameter name to default value.
    """
    try:
        source = Path(find_spec("skimgclf.classifier").origin).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError):
        from ..classifier import CNNClassifier

        return CNNClassifier().get_params()
    init = next(node for cls in tree.body
                if isinstance(cls, ast.ClassDef) and cls.name == "CNNClassifier"
                for node in cls.body
                if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    return {arg.arg: ast.literal_eval(default)
            for arg, default in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True)}


def parse_settings(assignments, defaults, *, option="--set"):
    """Parse ``["name=value", …]`` against an estimator's ``get_params()``.

    Parameters
    ----------
    assignments : list of str
        The raw ``name=value`` strings, in command line order (a later one wins).
    defaults : dict
        The estimator's parameters; the names allowed, and whether each takes a tuple.
    option : str, default="--set"
        The option's name, for error messages.

    Returns
    -------
    dict
        Parameter name to parsed value.
    """
    settings = {}
    for item in assignments:
        name, text = _split(item, defaults, option)
        settings[name] = _parse(text, isinstance(defaults[name], tuple), item, option)
    return settings


def parse_grid(assignments, defaults, *, option="--grid"):
    """Parse ``["name=candidate/candidate", …]`` into a scikit-learn parameter grid.

    Candidates are separated by ``/``; a parameter whose default is not a tuple also takes
    ``,`` as a separator (``dropout=0.25,0.5``), whereas for a tuple parameter ``,`` separates
    the items of one candidate (``filters=16,32/32,64`` is two candidates).

    Returns
    -------
    dict
        Parameter name to the list of its candidate values.
    """
    grid = {}
    for item in assignments:
        name, text = _split(item, defaults, option)
        sequence = isinstance(defaults[name], tuple)
        pieces = text.split("/") if "/" in text or sequence else text.split(",")
        grid[name] = [_parse(piece, sequence, item, option) for piece in pieces]
    return grid


def _parse(text, sequence, item, option):
    try:
        return parse_value(text, sequence=sequence)
    except UsageError as exc:
        raise UsageError(f"{option} {item!r}: {exc}") from None


def _split(item, defaults, option):
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"{option} {item!r}: expected name=value, e.g. {option} dropout=0.3")
    if name not in defaults:
        valid = ", ".join(sorted(n for n in defaults if "__" not in n))
        raise UsageError(f"{option} {item!r}: CNNClassifier has no parameter {name!r}; "
                         f"valid names: {valid}")
    return name, text
