"""The benchmarks' shared way of updating their own section of a page of docs/."""

import platform
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def markers(name, prefix="bench"):
    """The start and end markers of section ``name``."""
    return f"<!-- {prefix}:{name}:start -->", f"<!-- {prefix}:{name}:end -->"


def write_section(name, section, doc=DOC, prefix="bench"):
    """Replace section ``name`` of ``doc`` (markers included), or append it.

    ``prefix`` is the markers' first word: ``bench`` in docs/benchmarks.md, ``reliability``
    in docs/reliability.md.
    """
    start, end = markers(name, prefix)
    text = doc.read_text() if doc.exists() else f"# {doc.stem.title()}\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def cpu_model():
    """The processor's model name, for the machine line beside every figure."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
