"""Fuzzing ImageFolderLoader: hostile bytes, cut and mutated files, bombs, odd modes and names.

Every case must end in the pixels the file holds or an ImageLoadError naming the file, within
a time limit. The cases come from ``tests/fuzz_cases.py``, shared with
``benchmarks/fuzz_loader.py``, which runs tens of thousands of them; a failing case here is
replayed by ``fuzz_cases.make_case(kind, seed)``.
"""

import warnings
from random import Random

import numpy as np
import pytest
from fuzz_cases import (
    BOMB_HEADERS,
    COLOR_MODES,
    KINDS,
    SIGNATURES,
    Case,
    make_case,
    real_bomb,
    run_case,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from skimgclf import ImageFolderLoader
from skimgclf.exceptions import ImageLoadError

# Enough cases a kind to meet every mode, format and mutation; the benchmark runs many more.
EXAMPLES_PER_KIND = 200
# A case takes milliseconds; seconds only on a machine busy with other work.
FUZZ = settings(max_examples=EXAMPLES_PER_KIND, deadline=5000,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder under which each case gets a fresh folder of its own."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(autouse=True)
def _no_metadata_warnings():
    # PIL's notes on the damaged metadata of mutated files: the outcome is what is tested.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        yield


@pytest.mark.parametrize("kind", sorted(KINDS))
@FUZZ
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_every_case_gives_pixels_or_an_error_naming_the_file(root, kind, seed):
    case = make_case(kind, seed)
    assert run_case(case, root) in ("pixels", "error")


@settings(max_examples=200, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(head=st.sampled_from(SIGNATURES), body=st.binary(max_size=2048),
       color_mode=st.sampled_from(COLOR_MODES))
def test_arbitrary_bytes_behind_a_signature(root, head, body, color_mode):
    # Hypothesis's own bytes, which it shrinks to the smallest failing file.
    outcome = run_case(Case("bytes", -1, "a.png", head + body, color_mode), root)
    assert outcome in ("pixels", "error")


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "BMP", "TIFF", "JPEG"])
def test_huge_declared_sizes_are_refused_without_allocating(root, image_format, allocations):
    # 4.3 billion pixels, over twice PIL's limit: PIL refuses the header on opening.
    folder = root / f"{image_format}-header"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(BOMB_HEADERS[image_format](65535, 65535, Random(0)))
    with pytest.raises(ImageLoadError, match=r"'bomb.png' \(row 0\): refused by PIL's "
                                             r"decompression-bomb guard"):
        ImageFolderLoader(folder, color_mode="rgba").transform(["bomb.png"])
    assert allocations == []


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "BMP", "TIFF", "JPEG"])
def test_real_images_over_the_limit_are_refused_without_allocating(root, monkeypatch,
                                                                   image_format, allocations):
    # A real image between the limit and twice it, where PIL only warns, then decodes it.
    folder = root / f"{image_format}-real"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(real_bomb(image_format, 1500, 1000, Random(0)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    loader = ImageFolderLoader(folder, color_mode="rgba", rescale=None, dtype="uint8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageLoadError, match=r"'bomb.png' \(row 0\): refused by the "
                                                 r"decompression-bomb guard \(1500×1000"):
            loader.transform(["bomb.png"])
    assert allocations == []
    # Under a limit it fits, the same file decodes whole.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_500_000)
    assert loader.transform(["bomb.png"]).shape == (1, 1000, 1500, 4)
    assert allocations == [(1500, 1000)]


@pytest.mark.parametrize("name", ["-a.png", "--help.png", " a .png", "猫 🐱.png", "e\u0301.png",
                                  "sub dir/ü.png", "a#b%20c$(x);'\".png", "-/-.png"])
def test_odd_names_load_their_pixels(tmp_path, fashion_sample, name):
    (x_train, _), _ = fashion_sample
    (tmp_path / name).parent.mkdir(exist_ok=True)
    Image.fromarray(x_train[0]).save(tmp_path / name, "PNG")
    pixels = ImageFolderLoader(tmp_path, rescale=None, dtype="uint8").transform([name])
    np.testing.assert_array_equal(pixels[0, ..., 0], x_train[0])
