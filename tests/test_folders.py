"""Folders skimgclf replaces whole: its own only, proven by a manifest; never a user's."""

import json

import pytest

from skimgclf._folders import (
    MANIFEST,
    check_replaceable,
    claim,
    read_manifest,
    record_file,
    replacing_folder,
    verify,
)


def write_folder(folder, files):
    with replacing_folder(folder, "model") as stage:
        for name, text in files.items():
            (stage / name).parent.mkdir(exist_ok=True)
            (stage / name).write_text(text)
    return folder


def contents(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("entries", [
    # The report: a project folder with a `checkpoint` folder of another tool.
    {"checkpoint/": None, "thesis.tex": "years of work"},
    # Names skimgclf writes, which once sufficed to mark a folder as its own.
    {"cli.json": "{}", "thesis.tex": "years of work"},
    {"estimator.json": "{}", "notes.md": "mine"},
])
def test_a_folder_without_a_manifest_is_refused_untouched(tmp_path, entries):
    project = tmp_path / "proj"
    project.mkdir()
    for name, text in entries.items():
        if text is None:
            (project / name).mkdir()
        else:
            (project / name).write_text(text)
    before = contents(project)
    with pytest.raises(FileExistsError) as error:
        with replacing_folder(project, "model") as stage:
            (stage / "estimator.json").write_text("new")
    message = str(error.value)
    assert f"has no {MANIFEST}" in message
    for name in entries:
        assert repr(name.rstrip("/")) in message
    assert contents(project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_a_users_file_put_into_a_folder_of_skimgclf_is_named_and_kept(tmp_path):
    folder = write_folder(tmp_path / "model", {"estimator.json": "{}", "model.keras": "net"})
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match=r"entries it does not list: 'thesis.tex'"):
        check_replaceable(folder)
    with pytest.raises(FileExistsError), replacing_folder(folder, "model"):
        pass
    assert (folder / "thesis.tex").read_text() == "years of work"


def test_a_changed_file_is_no_longer_skimgclfs(tmp_path):
    folder = write_folder(tmp_path / "model", {"report.html": "<html>", "model.keras": "net"})
    (folder / "report.html").write_text("the user's notes on the report")
    with pytest.raises(FileExistsError,
                       match=r"entries changed since skimgclf wrote them: 'report.html'"):
        check_replaceable(folder)


@pytest.mark.parametrize("swap", ["file becomes folder", "folder becomes file", "link"])
def test_an_entry_of_another_kind_is_refused(tmp_path, swap):
    folder = write_folder(tmp_path / "model", {"report.html": "<html>", "sub/a.txt": "a"})
    if swap == "file becomes folder":
        (folder / "report.html").unlink()
        (folder / "report.html").mkdir()
        (folder / "report.html" / "draft.tex").write_text("mine")
        name = "report.html"
    elif swap == "folder becomes file":
        for path in (folder / "sub").iterdir():
            path.unlink()
        (folder / "sub").rmdir()
        (folder / "sub").write_text("mine")
        name = "sub"
    else:
        (folder / "report.html").unlink()
        (folder / "report.html").symlink_to(tmp_path)
        name = "report.html"
    with pytest.raises(FileExistsError, match=rf"does not list: '{name}'"):
        check_replaceable(folder)


def test_a_manifest_copied_into_a_users_folder_proves_nothing(tmp_path):
    ours = write_folder(tmp_path / "model", {"estimator.json": "{}"})
    project = tmp_path / "proj"
    project.mkdir()
    (project / "estimator.json").write_text("{}")
    (project / "data.csv").write_text("a,b\n")
    (project / MANIFEST).write_bytes((ours / MANIFEST).read_bytes())
    with pytest.raises(FileExistsError, match=r"does not list: 'data.csv'"):
        check_replaceable(project)


def test_a_sub_folder_must_be_skimgclfs_too(tmp_path):
    folder = write_folder(tmp_path / "layout", {"train/1.png": "png", "train.csv": "id\n"})
    assert read_manifest(folder / "train")["entries"]["1.png"]["type"] == "file"
    (folder / "train" / "my.png").write_text("mine")
    with pytest.raises(FileExistsError, match=r"changed since skimgclf wrote them: 'train'"):
        check_replaceable(folder)


def test_missing_entries_and_leftovers_of_killed_runs_do_not_make_a_folder_foreign(tmp_path):
    folder = write_folder(tmp_path / "model", {"report.html": "<html>", "a.png": "png",
                                               "checkpoint/run.json": "{}"})
    (folder / "a.png").unlink()
    (folder / ".report.html.0123456789abcdef0123456789abcdef.tmp").write_text("half")
    (folder / f".{MANIFEST}.0123456789abcdef0123456789abcdef.tmp").write_text("half")
    (folder / ".checkpoint.new.0123456789abcdef0123456789abcdef").mkdir()
    check_replaceable(folder)
    # A hidden name of another shape is a user's file.
    (folder / ".notes").write_text("mine")
    with pytest.raises(FileExistsError, match=r"'.notes'"):
        check_replaceable(folder)


def test_a_symbolic_link_or_a_file_is_not_replaced(tmp_path):
    target = write_folder(tmp_path / "model", {"estimator.json": "{}"})
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileExistsError, match="is a symbolic link"):
        check_replaceable(tmp_path / "link")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file"):
        check_replaceable(tmp_path / "file")


def test_a_file_put_in_while_the_work_runs_stops_the_swap(tmp_path):
    folder = write_folder(tmp_path / "model", {"estimator.json": "old"})
    with pytest.raises(FileExistsError, match="'thesis.tex'"):
        with replacing_folder(folder, "model") as stage:
            (stage / "estimator.json").write_text("new")
            (folder / "thesis.tex").write_text("written during a long training")
    assert (folder / "thesis.tex").exists() and (folder / "estimator.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_folders_written_into_a_claimed_folder_are_recorded_in_it(tmp_path):
    run = tmp_path / "run"
    claim(run, "demo")
    assert read_manifest(run) == {"format": "skimgclf-folder", "format_version": 1,
                                  "kind": "demo", "entries": {}}
    write_folder(run / "model", {"estimator.json": "{}"})
    (run / "submission.csv").write_text("id,label\n")
    record_file(run, "submission.csv")
    assert read_manifest(run)["entries"]["model"] == {"type": "folder"}
    check_replaceable(run)
    claim(run, "demo")  # already skimgclf's: kept as it is
    assert sorted(p.name for p in run.iterdir()) == ["model", MANIFEST, "submission.csv"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        claim(tmp_path / "mine", "demo")


def test_verify_checks_the_files_read(tmp_path):
    folder = write_folder(tmp_path / "model", {"estimator.json": '{"a": 1}', "cli.json": "{}"})
    assert verify(folder, ["estimator.json"], what="a model")["kind"] == "model"
    (folder / "estimator.json").write_text('{"a": 2}')
    with pytest.raises(ValueError, match=r"estimator.json does not match the checksum recorded"):
        verify(folder, ["estimator.json"], what="a model")
    (folder / "extra.json").write_text("{}")
    with pytest.raises(ValueError, match=r"extra.json is not among the files"):
        verify(folder, ["extra.json"], what="a model")
    with pytest.raises(FileNotFoundError, match=r"missing.json not found"):
        verify(folder, ["missing.json"], what="a model")
    (folder / MANIFEST).write_text("{")
    with pytest.raises(ValueError, match="is damaged"):
        verify(folder, ["cli.json"], what="a model")
    (folder / MANIFEST).unlink()
    with pytest.raises(FileNotFoundError, match=rf"has no {MANIFEST}, so it is not a model"):
        verify(folder, ["cli.json"], what="a model")


def test_the_manifest_lists_every_file_with_its_checksum(tmp_path):
    folder = write_folder(tmp_path / "model", {"estimator.json": "{}", "b.txt": "b"})
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["kind"] == "model"
    assert sorted(manifest["entries"]) == ["b.txt", "estimator.json"]
    assert manifest["entries"]["estimator.json"] == {
        "type": "file",
        "sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}
