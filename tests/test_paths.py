"""File paths from outside stay inside their folder: every kind of escape is refused."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from webapp.image_store import ImageStore
from webapp.paths import PathEscape, confined
from webapp.users import User

ADA, BOB = User("ada", "Ada"), User("bob", "Bob")


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "root"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("outside")
    return folder


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../secret.txt", "climbs out"),
        ("sub/../../secret.txt", "climbs out"),
        ("/etc/passwd", "absolute path"),
        ("%2e%2e/secret.txt", "URL-encoded"),
        ("..%2fsecret.txt", "URL-encoded"),
        ("%252e%252e/secret.txt", "URL-encoded"),
        ("..\\secret.txt", "backslash"),
        ("sub\\a.png", "backslash"),
        ("sub/a.png\x00.txt", "NUL"),
        ("", "empty"),
        (".", "the folder itself"),
    ],
)
def test_a_name_that_would_leave_its_folder_is_refused_with_the_reason(root, name, reason):
    with pytest.raises(PathEscape) as caught:
        confined(root, name, field="image")
    assert reason in caught.value.message
    assert caught.value.field == "image"
    assert str(root) not in caught.value.message


def test_a_link_that_leads_out_of_the_folder_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "innocent.png")
    os.symlink(tmp_path, root / "sub" / "door")
    for name in ("innocent.png", "sub/door/secret.txt"):
        with pytest.raises(PathEscape, match="leads outside its folder"):
            confined(root, name)


def test_a_loop_of_links_is_refused(root):
    os.symlink(root / "b", root / "a")
    os.symlink(root / "a", root / "b")
    with pytest.raises(PathEscape, match="cannot be followed"):
        confined(root, "a")


def test_plain_names_and_links_within_the_folder_resolve_inside_it(root):
    os.symlink(root / "sub" / "a.png", root / "alias.png")
    assert confined(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    assert confined(root, "alias.png") == (root / "sub" / "a.png").resolve()
    assert confined(root, "not-yet-there.png") == root.resolve() / "not-yet-there.png"


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "data")


def saved(store: ImageStore, user: User):
    return store.save(user, "job1", 0, Image.new("RGB", (8, 8)), "params", {"request": {}}).path


def test_a_stored_image_belongs_only_to_its_maker(store):
    mine, theirs = saved(store, ADA), saved(store, BOB)
    assert store.owns(ADA, mine) and store.owns(BOB, theirs)
    assert not store.owns(BOB, mine) and not store.owns(ADA, theirs)


def test_paths_that_climb_encode_or_link_into_another_folder_are_not_ones_own(store, tmp_path):
    mine, theirs = saved(store, ADA), saved(store, BOB)
    folder = store.folder_of(ADA)
    os.symlink(theirs, folder / "borrowed.png")
    (folder / "notes.txt").write_text("not an image")
    for path in (
        folder / ".." / theirs.parent.name / theirs.name,
        folder / f"%2e%2e/{theirs.parent.name}/{theirs.name}",
        folder / "borrowed.png",
        folder / "notes.txt",
        str(mine) + "\x00.txt",
        theirs.parent / ".." / folder.name / ".." / theirs.parent.name / theirs.name,
        folder,
    ):
        assert not store.owns(ADA, path), path


def test_a_relative_data_dir_still_finds_ones_own_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ImageStore(tmp_path.joinpath("data").relative_to(tmp_path))
    mine = saved(store, ADA)
    assert not mine.is_absolute()
    assert store.owns(ADA, mine) and not store.owns(BOB, mine)
