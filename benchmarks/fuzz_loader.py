"""A long fuzz run of ImageFolderLoader: many hostile and odd files, outcomes counted by kind.

Draws ``--cases`` cases, taking the kinds of ``tests/fuzz_cases.py`` in turn (random bytes,
empty files, truncated and mutated real images, decompression bombs, odd PIL modes and odd
names), case ``i`` of a kind from seed ``--seed + i``. Each must end in the file's pixels or
an ImageLoadError naming the file within ``fuzz_cases.TIMEOUT`` seconds, without PIL's
DecompressionBombWarning reaching the caller; anything else is a failure, printed with the
kind and seed that replay it (``fuzz_cases.make_case(kind, seed)``). Memory is checked twice
against its level after the first cases: the peak may rise by no more than the largest image
the loader decodes (``PIL.Image.MAX_IMAGE_PIXELS`` pixels of 4 bytes), so no header makes it
allocate what it declares beyond that; and the resident memory at the end may exceed it by
no more than ``--max-leak-mib``, so that nothing accumulates from case to case.

Run ``python benchmarks/fuzz_loader.py --cases 20000``; it prints a table, rewrites its section
of ``docs/reliability.md`` unless given ``--no-doc``, and exits with status 1 on any failure.
"""

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from _doc import cpu_model, write_section  # noqa: E402  (beside this script)

ROOT = Path(__file__).resolve().parents[1]
# The case generators live beside the test that also draws them.
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import PIL  # noqa: E402
from fuzz_cases import KINDS, FuzzFailure, make_case, run_case  # noqa: E402
from PIL import Image  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
OUTCOMES = ("pixels", "error", "failure")
# Cases run before the memory baseline is taken: imports, the sample images and PIL's plugins
# are loaded by then.
WARM_UP = 50
_SHOWN = 20


def fuzz(n_cases, seed, root):
    """Run the cases; return counts by (kind, outcome), seconds by kind, failures, memory.

    The memory is ``(peak, resident)`` in MiB after the warm-up cases and at the end.
    """
    counts, seconds, failures = Counter(), Counter(), []
    kinds = sorted(KINDS)
    baseline = None
    for index in range(n_cases):
        kind = kinds[index % len(kinds)]
        case_seed = seed + index // len(kinds)
        start = time.perf_counter()
        try:
            outcome = run_case(make_case(kind, case_seed), root)
        except FuzzFailure as failure:
            outcome = "failure"
            failures.append(str(failure))
        seconds[kind] += time.perf_counter() - start
        counts[kind, outcome] += 1
        if index + 1 == WARM_UP:
            baseline = _memory_mib()
    return counts, seconds, failures, baseline or _memory_mib(), _memory_mib()


def _memory_mib():
    """The peak and the current resident memory of this process, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return peak, resident


def table(counts, seconds):
    """Markdown rows: cases, outcomes and mean time per case of each kind, then the totals."""
    lines = ["| kind | cases | pixels | ImageLoadError | failures | ms per case |",
             "|---|---:|---:|---:|---:|---:|"]
    total = Counter()
    for kind in sorted(KINDS):
        row = [counts[kind, outcome] for outcome in OUTCOMES]
        n = sum(row)
        total.update(dict(zip(OUTCOMES, row, strict=True)), cases=n)
        lines.append(f"| {kind} | {n:,} | {row[0]:,} | {row[1]:,} | {row[2]:,} | "
                     f"{1000 * seconds[kind] / max(n, 1):.1f} |")
    lines.append(f"| **all** | **{total['cases']:,}** | **{total['pixels']:,}** | "
                 f"**{total['error']:,}** | **{total['failure']:,}** | |")
    return "\n".join(lines)


def machine_facts():
    model = cpu_model()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} cores, {model}; load average at the start {load}; Python "
            f"{platform.python_version()}, Pillow {PIL.__version__}, NumPy {np.__version__}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000, help="cases in all (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of each kind's first case")
    parser.add_argument("--max-leak-mib", type=float, default=64,
                        help="allowed growth of the resident memory, MiB (default 64)")
    parser.add_argument("--no-doc", action="store_true",
                        help="print the table without rewriting docs/reliability.md")
    args = parser.parse_args(argv)
    if args.cases < len(KINDS):
        parser.error(f"--cases must be at least {len(KINDS)}, one case of each kind")

    facts = machine_facts()
    # PIL's notes on damaged metadata would flood the output; the outcome of each case is
    # what is counted.
    warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skimgclf-fuzz-") as root:
        counts, seconds, failures, start_memory, end = fuzz(args.cases, args.seed, root)
    elapsed = time.perf_counter() - start
    peak_growth, leak = end[0] - start_memory[0], end[1] - start_memory[1]
    max_peak_growth = Image.MAX_IMAGE_PIXELS * 4 / 2**20
    memory = (f"After the first {WARM_UP} cases the process held {start_memory[1]:.0f} MiB; "
              f"its peak then rose by {peak_growth:.0f} MiB (allowed {max_peak_growth:.0f}: "
              f"the largest image the loader decodes) and at the end it held "
              f"{end[1]:.0f} MiB, {leak:+.0f} MiB (allowed +{args.max_leak_mib:g}).")
    rows = table(counts, seconds)
    print(rows)
    print(f"\n{memory} The run took {elapsed:.0f} s.")
    for failure in failures[:_SHOWN]:
        print("FAILURE:", failure)
    if len(failures) > _SHOWN:
        print(f"... and {len(failures) - _SHOWN} more failures")
    memory_ok = peak_growth <= max_peak_growth and leak <= args.max_leak_mib

    if not args.no_doc:
        memory_note = "" if memory_ok else " **The memory went over its bound.**"
        verdict = ("every case ended in the file's pixels or an `ImageLoadError` naming the file"
                   if not failures else f"**{len(failures)} cases failed**")
        section = "\n".join([
            "<!-- reliability:fuzz:start -->",
            f"`python benchmarks/fuzz_loader.py --cases {args.cases} --seed {args.seed}`: "
            f"{verdict}. {memory}{memory_note} The run took {elapsed:.0f} s.",
            "",
            rows,
            "",
            f"Machine: {facts}. The times per case were measured while other work shared the "
            "CPU; they show the cost of each kind, not the loader's speed.",
            "<!-- reliability:fuzz:end -->",
        ])
        write_section("fuzz", section, doc=DOC, prefix="reliability")
        print(f"\nwrote the fuzz section of {DOC}")
    return 0 if not failures and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
