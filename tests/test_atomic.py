import os

import pytest

from skimgclf._atomic import check_replaceable, open_atomic, replacing_folder


def test_open_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "submission.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), open_atomic(target, "w") as handle:
        handle.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.csv"]


def test_open_atomic_replaces_on_success(tmp_path):
    target = tmp_path / "out.bin"
    with open_atomic(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"
    assert len(list(tmp_path.iterdir())) == 1


def test_replacing_folder_swaps_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "estimator.json").write_text("old")
    with pytest.raises(KeyboardInterrupt), replacing_folder(folder, ("estimator.json",)) as stage:
        (stage / "estimator.json").write_text("new")
        raise KeyboardInterrupt
    assert (folder / "estimator.json").read_text() == "old"
    with replacing_folder(folder, ("estimator.json",)) as stage:
        (stage / "estimator.json").write_text("new")
    assert (folder / "estimator.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_users_folder_is_never_replaced(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="did not write"):
        with replacing_folder(tmp_path, ("estimator.json",)):
            pass
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    with pytest.raises(FileExistsError, match="is a file"):
        check_replaceable(tmp_path / "thesis.tex", ("estimator.json",))


def test_replaced_folder_gets_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with replacing_folder(tmp_path / "model", ("estimator.json",)) as stage:
            (stage / "estimator.json").write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
