"""JPEG and PNG decoders for colour photos: Pillow, its draft mode, and libjpeg-turbo wheels.

Photos at camera and phone sizes (640×480 to 1600×1200, a third of them portrait) are made from
random crops of scikit-learn's two sample photos, scaled up with Lanczos and given a little
sensor-like noise (σ = 3 grey levels, without which upscaled photos compress unrealistically
well), then saved as JPEG at quality 90 and, a third of them, as PNG. Each decoder turns the
file into 8-bit RGB pixels at the classifier's usual sizes, 96×96 and 224×224, in interleaved
turns on one thread: the loader's workers each decode on one, so OpenCV and libvips are held to
one thread too (``cv2.setNumThreads(1)``, ``VIPS_CONCURRENCY=1``).

Contenders: the loader's own decode (``skimgclf._images.decode_image``) with
``jpeg_draft=False`` (Pillow at full size, then Pillow's resize) and ``jpeg_draft=True`` (PIL's
draft mode: libjpeg-turbo's DCT scaling by 1/2, 1/4 or 1/8, then the resize); ``simplejpeg`` and
OpenCV (``opencv-python-headless``), both decoding at the same reduced scale, then Pillow's
resize, so that only the decoder differs; ``pyvips`` (``pyvips-binary``), whose
``thumbnail_buffer`` shrinks on load and resizes with its own filter. For PNG: Pillow, OpenCV
and pyvips, each followed by Pillow's resize. The whole loader
(``ImageFolderLoader(n_jobs=1)``) is timed on the JPEGs with ``jpeg_draft`` on and off. Pixels
are compared with the full-size Pillow decode, and the JPEG's own error (the original pixels,
resized, against that decode) is shown for scale. The effect on accuracy: a logistic
regression on items of the shipped Fashion-MNIST sample, each enlarged 16 times into a tinted
448×448 colour JPEG and loaded back at 28×28 with and without ``jpeg_draft``.

The optional decoders are not dependencies; those not installed are left out of the table::

    pip install simplejpeg opencv-python-headless pyvips pyvips-binary

Run ``python benchmarks/bench_decoders.py``; it prints a table and rewrites its section of
``docs/benchmarks.md``. Times are the best of ``--repeats`` turns.
"""

import argparse
import io
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import PIL
from _doc import cpu_model, markers, write_section  # beside this script
from PIL import Image
from sklearn.datasets import load_sample_images
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from skimgclf import ImageFolderLoader
from skimgclf._images import decode_image
from skimgclf._precision import cpu_flags
from skimgclf.datasets import load_fashion_mnist_sample

START, END = markers("decoders")
CAMERA_SIZES = [(640, 480), (1024, 768), (1280, 960), (1600, 1200)]
TARGETS = (96, 224)
# The processor features that decide how fast libjpeg-turbo's SIMD code runs.
SIMD_FLAGS = ("sse4_2", "avx2", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16", "neon", "asimd")
BILINEAR = Image.Resampling.BILINEAR
# Items of the accuracy check: enlarged from 28×28 to this side, so that draft mode decodes
# them at 1/8 scale before the resize back to 28×28.
ITEM_SIDE = 448
N_TRAIN_ITEMS, N_TEST_ITEMS = 2000, 1000


def write_photos(folder, count, seed=0):
    """Write ``count`` JPEGs (and every third as PNG too); return their names and pixels."""
    rng = np.random.default_rng(seed)
    samples = load_sample_images().images
    jpegs, pngs, originals = [], [], {}
    for i in range(count):
        sample = samples[i % len(samples)]
        width, height = CAMERA_SIZES[i % len(CAMERA_SIZES)]
        if i % 3 == 2:
            width, height = height, width
        sample_height, sample_width = sample.shape[:2]
        crop_height = int(min(sample_height, sample_width * height / width) * rng.uniform(0.5, 1))
        crop_width = int(crop_height * width / height)
        top = rng.integers(0, sample_height - crop_height + 1)
        left = rng.integers(0, sample_width - crop_width + 1)
        crop = Image.fromarray(sample[top:top + crop_height, left:left + crop_width])
        scaled = np.asarray(crop.resize((width, height), Image.Resampling.LANCZOS), float)
        noisy = np.clip(np.rint(scaled + rng.normal(0, 3, scaled.shape)), 0, 255)
        photo = Image.fromarray(noisy.astype(np.uint8))
        jpegs.append(f"photo_{i:03d}.jpg")
        photo.save(folder / jpegs[-1], quality=90)
        originals[jpegs[-1]] = photo
        if i % 3 == 0:
            pngs.append(f"photo_{i:03d}.png")
            photo.save(folder / pngs[-1])
    return jpegs, pngs, originals


def read(path):
    with open(path, "rb") as file:
        return file.read()


def pillow(jpeg_draft):
    def decode(path, size):
        return decode_image(os.fspath(path), path.name, mode="RGB", size=size, resample=BILINEAR,
                            jpeg_draft=jpeg_draft, max_pixels=Image.MAX_IMAGE_PIXELS)
    return decode


def resized(pixels, size):
    """Pillow's resize of decoded RGB pixels, as the loader does it."""
    return np.asarray(Image.fromarray(pixels).resize(size, BILINEAR))


def bicubic(folder, names, size):
    """The full-size decodes resized with another filter: how much that choice alone moves."""
    return [decode_image(os.fspath(folder / name), name, mode="RGB", size=size,
                         resample=Image.Resampling.BICUBIC, jpeg_draft=False,
                         max_pixels=Image.MAX_IMAGE_PIXELS) for name in names]


def draft_scale(data, size):
    """The reduction PIL's draft mode picks: the largest of 8, 4, 2, 1 keeping ``size``."""
    with Image.open(io.BytesIO(data)) as image:  # reads the header only
        width, height = image.size
    return next(scale for scale in (8, 4, 2, 1)
                if width // scale >= size[0] and height // scale >= size[1])


def optional_decoders():
    """The installed optional decoders: name → (JPEG function, PNG function or None)."""
    decoders = {}
    try:
        import simplejpeg
    except ImportError:
        pass
    else:
        def simplejpeg_jpeg(path, size):
            pixels = simplejpeg.decode_jpeg(read(path), colorspace="RGB", min_width=size[0],
                                            min_height=size[1])
            return resized(pixels, size)
        decoders[f"simplejpeg {simplejpeg.__version__}"] = (simplejpeg_jpeg, None)
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2.setNumThreads(1)
        reduced = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                   4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}

        def opencv_jpeg(path, size):
            data = read(path)
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), reduced[draft_scale(data, size)])
            return resized(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)

        def opencv_png(path, size):
            bgr = cv2.imdecode(np.frombuffer(read(path), np.uint8), cv2.IMREAD_COLOR)
            return resized(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)
        decoders[f"OpenCV {cv2.__version__}"] = (opencv_jpeg, opencv_png)
    # libvips starts a thread per core unless told otherwise, when it is first imported.
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    try:
        import pyvips
    except (ImportError, OSError):
        pass
    else:
        def as_array(image):
            return np.ndarray(buffer=image.write_to_memory(), dtype=np.uint8,
                              shape=(image.height, image.width, image.bands))

        def vips_jpeg(path, size):
            return as_array(pyvips.Image.thumbnail_buffer(read(path), size[0], height=size[1],
                                                          size="force"))

        def vips_png(path, size):
            return resized(as_array(pyvips.Image.new_from_buffer(read(path), "")), size)
        version = ".".join(str(pyvips.version(part)) for part in range(3))
        decoders[f"pyvips (libvips {version})"] = (vips_jpeg, vips_png)
    return decoders


def difference(outputs, reference):
    """Mean and max absolute difference, in grey levels, of two lists of uint8 images."""
    diffs = [np.abs(a.astype(np.int16) - b) for a, b in zip(outputs, reference, strict=True)]
    return np.mean([d.mean() for d in diffs]), max(int(d.max()) for d in diffs)


def race(contenders, repeats):
    """Time each of ``contenders`` (name → function) ``repeats`` times, taking turns.

    Returns the smallest CPU time of each (all threads of this process: a decoder cannot
    gain by starting threads, and the other jobs on a shared machine barely change it), its
    smallest wall time, and its last result.
    """
    results = {}
    cpu, wall = {name: [] for name in contenders}, {name: [] for name in contenders}
    for _ in range(repeats):
        for name, function in contenders.items():
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            results[name] = function()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
    return ({name: min(values) for name, values in cpu.items()},
            {name: min(values) for name, values in wall.items()}, results)


def compare(folder, names, contenders, size, repeats, loaders=()):
    """Time ``contenders`` (name → decode(path, size)) and ``loaders`` (name → loader) on the
    files ``names``; return the CPU and wall ms per image and the pixels of each."""
    paths = [folder / name for name in names]
    functions = {name: (lambda decode=decode: [decode(path, size) for path in paths])
                 for name, decode in contenders.items()}
    functions.update({name: (lambda loader=loader: list(loader.transform(names)))
                      for name, loader in dict(loaders).items()})
    cpu, wall, outputs = race(functions, repeats)
    per_image = {name: (1000 * cpu[name] / len(paths), 1000 * wall[name] / len(paths))
                 for name in functions}
    return per_image, outputs


def load_average():
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def accuracy_effect(folder, seed=0):
    """Test accuracy of a logistic regression trained and tested on drafted or full pixels.

    Returns ``{(train jpeg_draft, test jpeg_draft): accuracy}``.
    """
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist_sample()
    items = np.concatenate([x_train[:N_TRAIN_ITEMS], x_test[:N_TEST_ITEMS]])
    labels = np.concatenate([y_train[:N_TRAIN_ITEMS], y_test[:N_TEST_ITEMS]])
    rng = np.random.default_rng(seed)
    names = []
    for i, item in enumerate(items):
        grey = Image.fromarray(item).resize((ITEM_SIDE, ITEM_SIDE), Image.Resampling.BICUBIC)
        colour = np.asarray(grey, float)[..., None] * rng.uniform(0.3, 1, 3) + 20
        colour += rng.normal(0, 3, colour.shape)
        names.append(f"item_{i:04d}.jpg")
        Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8)).save(folder / names[-1],
                                                                        quality=90)
    pixels = {draft: ImageFolderLoader(folder, color_mode="rgb", target_size=(28, 28),
                                       jpeg_draft=draft).transform(names).reshape(len(names), -1)
              for draft in (True, False)}
    scores = {}
    for train in (True, False):
        # Both sides stop at the same number of iterations: the comparison is the point, not
        # the best score.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=200).fit(pixels[train][:N_TRAIN_ITEMS],
                                                         labels[:N_TRAIN_ITEMS])
        for test in (True, False):
            predicted = model.predict(pixels[test][N_TRAIN_ITEMS:])
            scores[train, test] = np.mean(predicted == labels[N_TRAIN_ITEMS:])
    return scores


def simd_flags():
    """The SIMD features among ``SIMD_FLAGS`` the processor has (Linux), for the record."""
    flags = cpu_flags()
    if not flags:
        return "unknown"
    return " ".join(flag for flag in SIMD_FLAGS if flag in flags) or "none of " + str(SIMD_FLAGS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=48, help="JPEG photos (a third as PNG)")
    parser.add_argument("--repeats", type=int, default=5, help="turns per timing (best kept)")
    args = parser.parse_args()
    flags, load_start = simd_flags(), load_average()
    print(f"CPU flags: {flags}; load average {load_start}")
    optional = optional_decoders()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "items").mkdir()
        scores = accuracy_effect(folder / "items")
        jpegs, pngs, originals = write_photos(folder, args.photos)
        jpeg_kib = np.mean([os.path.getsize(folder / name) for name in jpegs]) / 1024
        png_kib = np.mean([os.path.getsize(folder / name) for name in pngs]) / 1024
        for side in TARGETS:
            size = (side, side)
            contenders = {"Pillow, full size (`jpeg_draft=False`)": pillow(False),
                          "Pillow, draft (`jpeg_draft=True`, default)": pillow(True)}
            contenders.update({name: jpeg for name, (jpeg, _) in optional.items()})
            loaders = {f"ImageFolderLoader, jpeg_draft={draft}": ImageFolderLoader(
                folder, color_mode="rgb", target_size=size, jpeg_draft=draft,
                rescale=None, dtype="uint8") for draft in (False, True)}
            times, outputs = compare(folder, jpegs, contenders, size, args.repeats, loaders)
            full, draft = (times[name][0] for name in list(contenders)[:2])
            reference = outputs[list(contenders)[0]]
            jpeg_error = difference([resized(np.asarray(originals[name]), size)
                                     for name in jpegs], reference)
            for name in [*contenders, *loaders]:
                rows.append(("JPEG", side, name, *times[name], full / times[name][0],
                             draft / times[name][0], *difference(outputs[name], reference)))
            rows.append(("JPEG", side, "*(the original pixels, before JPEG compression)*",
                         None, None, None, None, *jpeg_error))
            rows.append(("JPEG", side, "*(the full-size decode, resized with `bicubic`)*",
                         None, None, None, None,
                         *difference(bicubic(folder, jpegs, size), reference)))
            contenders = {"Pillow": pillow(True)}
            contenders.update({name: png for name, (_, png) in optional.items() if png})
            times, outputs = compare(folder, pngs, contenders, size, args.repeats)
            reference = outputs["Pillow"]
            for name in contenders:
                rows.append(("PNG", side, name, *times[name],
                             times["Pillow"][0] / times[name][0], None,
                             *difference(outputs[name], reference)))

    def cell(value, pattern):
        return "–" if value is None else pattern.format(value)

    table = ["| format | target | decoder | CPU ms per image | wall ms | × Pillow full size "
             "| × Pillow draft | mean abs. difference | max abs. difference |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {kind} | {side}×{side} | {name} | {cell(cpu, '{:.2f}')} "
              f"| {cell(wall, '{:.2f}')} | {cell(full, '{:.2f}×')} | {cell(draft, '{:.2f}×')} "
              f"| {mean:.2f} | {peak} |"
              for kind, side, name, cpu, wall, full, draft, mean, peak in rows]
    missing = [name for name in ("simplejpeg", "OpenCV", "pyvips")
               if not any(key.startswith(name) for key in optional)]
    section = "\n".join([
        START,
        "## JPEG and PNG decoders (`benchmarks/bench_decoders.py`)",
        "",
        f"Machine: {os.cpu_count()} cores, {cpu_model()}; CPU flags {flags}; load average "
        f"{load_start} at the start, {load_average()} at the end (other jobs shared the "
        "cores: only ratios within this run mean anything); Python "
        f"{platform.python_version()}, Pillow {PIL.__version__}. {args.photos} photos, "
        "640×480 to 1600×1200, JPEG quality 90 "
        f"(mean {jpeg_kib:.0f} KiB) and {len(pngs)} of them as PNG (mean {png_kib:.0f} KiB), "
        "decoded to RGB at the target size on one thread, best of "
        f"{args.repeats} interleaved turns. Speed-ups are ratios of CPU time, which the other "
        "jobs on a shared machine change far less than wall time. Differences are in grey "
        "levels (0-255) from Pillow's full-size decode, resized alike; PNG rows compare "
        "with Pillow's PNG decode."
        + (f" Not installed, so not measured: {', '.join(missing)}." if missing else ""),
        "",
        *table,
        "",
        f"Accuracy: a logistic regression on {N_TRAIN_ITEMS:,} items of the shipped "
        f"Fashion-MNIST sample, each enlarged to a tinted {ITEM_SIDE}×{ITEM_SIDE} colour JPEG "
        f"(quality 90) and loaded back at 28×28, scored {scores[True, True]:.3f} on "
        f"{N_TEST_ITEMS:,} test items with `jpeg_draft=True` throughout and "
        f"{scores[False, False]:.3f} with `jpeg_draft=False`; trained on one and tested on "
        f"the other, {scores[True, False]:.3f} and {scores[False, True]:.3f} (one test item "
        f"is 0.001).",
        END,
    ])
    print(section)
    write_section("decoders", section)


if __name__ == "__main__":
    main()
