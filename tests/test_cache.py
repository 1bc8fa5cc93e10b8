"""The on-disk cache of decoded images: keys, round trips, atomic and validated entries."""

import os

import numpy as np
import pytest

from skimgclf._cache import DecodedImageCache

SETTINGS = ("L", None, "BILINEAR")


def version(path):
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"not decoded here")
    return str(path)


@pytest.fixture
def pixels(fashion_sample):
    (x_train, _), _ = fashion_sample
    return x_train[0][..., None]


def test_round_trip(tmp_path, image_file, pixels):
    cache = DecodedImageCache(tmp_path / "cache", SETTINGS)
    entry = cache.entry(image_file, version(image_file))
    assert cache.get(entry) is None
    cache.put(entry, pixels)
    got = cache.get(entry)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, pixels)
    # A second cache object on the same folder (another run, process) sees the entry.
    np.testing.assert_array_equal(DecodedImageCache(tmp_path / "cache", SETTINGS).get(entry),
                                  pixels)
    assert [name for name in os.listdir(tmp_path / "cache")] == [os.path.basename(entry)]


def test_key_changes_with_file_and_settings(tmp_path, image_file):
    cache = DecodedImageCache(tmp_path, SETTINGS)
    entry = cache.entry(image_file, version(image_file))
    assert cache.entry(image_file, version(image_file)) == entry

    os.utime(image_file, ns=(0, 123))
    assert cache.entry(image_file, version(image_file)) != entry  # modification time
    touched = cache.entry(image_file, version(image_file))
    with open(image_file, "ab") as file:
        file.write(b"!")
    os.utime(image_file, ns=(0, 123))
    assert cache.entry(image_file, version(image_file)) not in (entry, touched)  # size

    current = version(image_file)
    other_settings = DecodedImageCache(tmp_path, ("RGB", None, "BILINEAR"))
    assert other_settings.entry(image_file, current) != cache.entry(image_file, current)
    assert cache.entry(image_file + "x", current) != cache.entry(image_file, current)


@pytest.mark.parametrize("damage", [b"", b"SKI1", "cut", "magic"])
def test_incomplete_or_foreign_entry_reads_as_absent(tmp_path, image_file, pixels, damage):
    cache = DecodedImageCache(tmp_path, SETTINGS)
    entry = cache.entry(image_file, version(image_file))
    cache.put(entry, pixels)
    data = open(entry, "rb").read()
    damaged = {"cut": data[:-1], "magic": b"XXXX" + data[4:]}.get(damage, damage)
    with open(entry, "wb") as file:
        file.write(damaged)
    assert cache.get(entry) is None


def test_interrupted_write_leaves_no_entry(tmp_path, image_file, pixels, monkeypatch):
    cache = DecodedImageCache(tmp_path / "cache", SETTINGS)
    entry = cache.entry(image_file, version(image_file))

    def interrupted(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.put(entry, pixels)
    assert os.listdir(tmp_path / "cache") == []
    assert cache.get(entry) is None


def test_block_round_trip_is_mapped_and_keyed_by_every_file(tmp_path, fashion_sample):
    (x_train, _), _ = fashion_sample
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"{i}.png"))
        (tmp_path / f"{i}.png").write_bytes(bytes([i]))
    versions = [version(path) for path in files]
    cache = DecodedImageCache(tmp_path / "cache", SETTINGS)
    entry = cache.block_entry(files, versions)
    assert cache.get_block(entry) is None
    writer = cache.new_block(entry, (3, 28, 28, 1))
    writer.pixels[:] = x_train[:3, ..., None]
    assert cache.get_block(entry) is None  # not there before the commit
    assert writer.commit() == entry
    block = cache.get_block(entry)
    assert isinstance(block, np.memmap) and block.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(block[..., 0], x_train[:3])
    assert os.listdir(tmp_path / "cache") == [os.path.basename(entry)]
    # The order, any file's version and the settings are part of the key.
    assert cache.block_entry(files[::-1], versions[::-1]) != entry
    assert cache.block_entry(files, [versions[0], versions[1], (9, 9)]) != entry
    other = DecodedImageCache(tmp_path / "cache", ("RGB", None, "BILINEAR"))
    assert other.block_entry(files, versions) != entry


def test_block_incomplete_or_discarded_is_absent(tmp_path):
    cache = DecodedImageCache(tmp_path, SETTINGS)
    entry = str(tmp_path / "x.block")
    writer = cache.new_block(entry, (2, 4, 4, 1))
    writer.discard()
    assert os.listdir(tmp_path) == []
    cache.new_block(entry, (2, 4, 4, 1)).commit()
    assert cache.get_block(entry).shape == (2, 4, 4, 1)
    with open(entry, "r+b") as file:  # a crash before the data reached the disk
        file.truncate(4096 + 31)
    assert cache.get_block(entry) is None
    with open(entry, "wb") as file:
        file.write(b"SKB")
    assert cache.get_block(entry) is None
