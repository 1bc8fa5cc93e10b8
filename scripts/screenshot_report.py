"""Screenshots of the report of ``skimgclf demo`` in a real browser, for docs/report.md.

Runs the demo (the same code as ``skimgclf train``) in a temporary folder, opens its
``model/report.html`` in headless Chromium (Debian's package: ``apt-get install chromium``)
with a fresh profile and no network or extensions, and writes two screenshots: the top of the
page, and its calibration and Grad-CAM sections; reduced to 256 colours to stay small.

Usage: python scripts/screenshot_report.py [--report PATH]   (PATH: an existing report.html)
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parents[1] / "docs"
# (file under docs/, the section the picture starts at or None for the top, window height):
# the window is the picture.
SHOTS = (("report_top.png", None, 1500), ("report_insight.png", "calibration", 1900))
WIDTH = 1150


def run_demo(folder):
    subprocess.run([sys.executable, "-m", "skimgclf", "demo", "--workdir", str(folder),
                    "--quiet"], check=True)
    return folder / "model" / "report.html"


def from_section(report, section, folder):
    """The report's page from its section ``section`` on, its heading and style kept.

    Headless Chromium draws a blank page when asked to scroll to a fragment, so the sections
    above are cut out of a copy instead.
    """
    page = report.read_text(encoding="utf-8")
    heading = page.index('<p class="meta">')
    start = page.index(f'<h2 id="{section}">')
    cut = folder / f"report_{section}.html"
    cut.write_text(page[:heading] + page[start:], encoding="utf-8")
    return cut


def screenshot(browser, page, target, height):
    with tempfile.TemporaryDirectory(prefix="skimgclf-chromium-") as profile:
        # A fresh profile, nothing fetched or synchronised: the page must stand alone.
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--disable-extensions",
                        "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--screenshot={target}",
                        f"--window-size={WIDTH},{height}", page],
                       check=True, capture_output=True, timeout=120)
    with Image.open(target) as image:
        image.convert("RGB").quantize(256).save(target, optimize=True)
    return target.stat().st_size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="screenshot this report.html instead "
                        "of running the demo")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="skimgclf-screenshot-") as folder:
        report = args.report or run_demo(Path(folder) / "demo")
        for name, section, height in SHOTS:
            page = report if section is None else from_section(report, section, Path(folder))
            size = screenshot(browser, page.resolve().as_uri(), DOCS / name, height)
            print(f"{DOCS / name}: {size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
