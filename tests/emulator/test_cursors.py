"""Cursor semantics: list_folder, list_folder/continue, get_latest_cursor, reset, restarts."""

from __future__ import annotations

from pathlib import Path

import dropbox
import pytest
from dropbox import files
from dropbox.content_hash import content_hash
from dropbox.exceptions import ApiError

from tests.fixtures.emulator import EmulatorProcess, start_emulator


def drain(dbx: dropbox.Dropbox, cursor: str) -> tuple[list[files.Metadata], str, int]:
    """All entries from ``cursor`` on, the final cursor and the number of pages read."""
    entries: list[files.Metadata] = []
    pages = 0
    while True:
        result = dbx.files_list_folder_continue(cursor)
        entries += result.entries
        cursor, pages = result.cursor, pages + 1
        if not result.has_more:
            return entries, cursor, pages


def summary(entries: list[files.Metadata]) -> list[tuple[str, str]]:
    return [(type(entry).__name__, entry.path_lower) for entry in entries]


def test_initial_listing_recursive_and_not(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"1", f"{folder}/a.txt")
    dbx.files_upload(b"2", f"{folder}/Sub/b.txt")

    flat = dbx.files_list_folder(folder)
    assert sorted(summary(flat.entries)) == [("FileMetadata", f"{folder}/a.txt".lower()),
                                             ("FolderMetadata", f"{folder}/sub".lower())]
    assert flat.has_more is False

    deep = dbx.files_list_folder(folder, recursive=True)
    paths = [entry.path_lower for entry in deep.entries]
    # The folder itself first, then each folder before its contents.
    assert paths == sorted(paths) and paths[0] == folder.lower()
    assert f"{folder}/sub/b.txt".lower() in paths


def test_continue_reports_exactly_the_interleaved_changes(dbx: dropbox.Dropbox,
                                                          folder: str) -> None:
    dbx.files_upload(b"keep", f"{folder}/keep.txt")
    dbx.files_upload(b"old", f"{folder}/change.txt")
    dbx.files_upload(b"bye", f"{folder}/gone.txt")
    dbx.files_upload(b"moving", f"{folder}/from/m.txt")
    cursor = dbx.files_list_folder(folder, recursive=True).cursor

    dbx.files_upload(b"added", f"{folder}/added.txt")
    dbx.files_upload(b"v2", f"{folder}/change.txt", mode=files.WriteMode.overwrite)
    changed = dbx.files_upload(b"v3", f"{folder}/change.txt", mode=files.WriteMode.overwrite)
    dbx.files_delete_v2(f"{folder}/gone.txt")
    dbx.files_create_folder_v2(f"{folder}/newdir")
    dbx.files_move_v2(f"{folder}/from", f"{folder}/to")
    dbx.files_upload(b"temp", f"{folder}/temp.txt")
    dbx.files_delete_v2(f"{folder}/temp.txt")

    entries, cursor, _ = drain(dbx, cursor)
    by_path = {entry.path_lower: entry for entry in entries}
    low = folder.lower()
    assert len(by_path) == len(entries), "one entry per changed path"
    assert set(by_path) == {f"{low}/added.txt", f"{low}/change.txt", f"{low}/gone.txt",
                            f"{low}/newdir", f"{low}/from", f"{low}/from/m.txt", f"{low}/to",
                            f"{low}/to/m.txt", f"{low}/temp.txt"}
    assert f"{low}/keep.txt" not in by_path
    # Collapsed to the latest state: two overwrites -> one FileMetadata with the last rev.
    assert isinstance(by_path[f"{low}/change.txt"], files.FileMetadata)
    assert by_path[f"{low}/change.txt"].rev == changed.rev
    for deleted in ("gone.txt", "from", "from/m.txt", "temp.txt"):
        assert isinstance(by_path[f"{low}/{deleted}"], files.DeletedMetadata), deleted
    assert isinstance(by_path[f"{low}/newdir"], files.FolderMetadata)
    assert isinstance(by_path[f"{low}/to/m.txt"], files.FileMetadata)
    # Nothing more until the next change.
    assert dbx.files_list_folder_continue(cursor).entries == []


def test_non_recursive_cursor_sees_only_direct_children(dbx: dropbox.Dropbox,
                                                        folder: str) -> None:
    dbx.files_create_folder_v2(f"{folder}/deep")
    cursor = dbx.files_list_folder(folder).cursor
    dbx.files_upload(b"x", f"{folder}/direct.txt")
    dbx.files_upload(b"y", f"{folder}/deep/nested.txt")
    dbx.files_upload(b"z", f"{folder}-sibling/outside.txt")  # shares the prefix, not the folder
    entries, _, _ = drain(dbx, cursor)
    assert summary(entries) == [("FileMetadata", f"{folder}/direct.txt".lower())]


def test_pagination_with_limit(dbx: dropbox.Dropbox, folder: str) -> None:
    for index in range(7):
        dbx.files_upload(b"%d" % index, f"{folder}/f{index}.txt")
    first = dbx.files_list_folder(folder, limit=3)
    assert len(first.entries) == 3 and first.has_more
    rest, cursor, pages = drain(dbx, first.cursor)
    names = [entry.name for entry in first.entries + rest]
    assert sorted(names) == [f"f{index}.txt" for index in range(7)]
    assert pages == 2  # 3 + 3 + 1: the limit of the original call applies to continue
    for index in range(5):
        dbx.files_upload(b"new%d" % index, f"{folder}/n{index}.txt")
    changes, _, pages = drain(dbx, cursor)
    assert sorted(entry.name for entry in changes) == [f"n{index}.txt" for index in range(5)]
    assert pages == 2


def test_get_latest_cursor_lists_nothing_old(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"old", f"{folder}/old.txt")
    cursor = dbx.files_list_folder_get_latest_cursor(folder, recursive=True).cursor
    dbx.files_upload(b"new", f"{folder}/new.txt")
    entries, _, _ = drain(dbx, cursor)
    assert summary(entries) == [("FileMetadata", f"{folder}/new.txt".lower())]


def test_include_deleted_lists_deleted_paths(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"x", f"{folder}/deleted.txt")
    dbx.files_upload(b"y", f"{folder}/alive.txt")
    dbx.files_delete_v2(f"{folder}/deleted.txt")
    plain = summary(dbx.files_list_folder(folder).entries)
    with_deleted = summary(dbx.files_list_folder(folder, include_deleted=True).entries)
    assert ("DeletedMetadata", f"{folder}/deleted.txt".lower()) not in plain
    assert ("DeletedMetadata", f"{folder}/deleted.txt".lower()) in with_deleted


def test_garbled_and_foreign_cursors_get_reset(dbx: dropbox.Dropbox, folder: str,
                                               server: EmulatorProcess) -> None:
    dbx.files_create_folder_v2(folder)
    cursor = dbx.files_list_folder(folder).cursor
    for bad in ("garbage", cursor[:-4] + "AAAA", cursor[::-1]):
        with pytest.raises(ApiError) as caught:
            dbx.files_list_folder_continue(bad)
        assert caught.value.error.is_reset(), bad


def test_cursor_older_than_the_journal_gets_reset(emulator: EmulatorProcess) -> None:
    dbx = emulator.client()
    dbx.files_upload(b"x", "/a.txt")
    cursor = dbx.files_list_folder("").cursor
    dbx.files_upload(b"y", "/b.txt")
    emulator.compact_journal()
    with pytest.raises(ApiError) as caught:
        dbx.files_list_folder_continue(cursor)
    assert caught.value.error.is_reset()
    # A fresh listing works and its cursor continues normally.
    fresh = dbx.files_list_folder("")
    assert sorted(entry.name for entry in fresh.entries) == ["a.txt", "b.txt"]
    dbx.files_upload(b"z", "/c.txt")
    assert [entry.name for entry in dbx.files_list_folder_continue(fresh.cursor).entries] \
        == ["c.txt"]


def test_cursor_of_a_deleted_folder_is_not_found(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_create_folder_v2(f"{folder}/watched")
    cursor = dbx.files_list_folder(f"{folder}/watched").cursor
    dbx.files_delete_v2(f"{folder}/watched")
    with pytest.raises(ApiError) as caught:
        dbx.files_list_folder_continue(cursor)
    assert caught.value.error.get_path().is_not_found()


def test_listing_a_file_is_not_folder(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"x", f"{folder}/file.txt")
    with pytest.raises(ApiError) as caught:
        dbx.files_list_folder(f"{folder}/file.txt")
    assert caught.value.error.get_path().is_not_folder()


def test_cursors_files_and_tokens_survive_a_restart(tmp_path: Path) -> None:
    with start_emulator(tmp_path) as emulator:
        dbx = emulator.client()
        before = dbx.files_upload(b"before", "/before.txt")
        cursor = dbx.files_list_folder("", recursive=True).cursor
        dbx.files_upload(b"during", "/during.txt")
        minted = emulator.refreshing_client()
        minted.check_and_refresh_access_token()
        old_url, old_root = emulator.url, emulator.root

        emulator.restart()

        assert emulator.root == old_root
        assert emulator.url == old_url  # same port when it is still free
        dbx = emulator.client()
        dbx.files_upload(b"after", "/after.txt")
        entries, _, _ = drain(dbx, cursor)
        assert [entry.name for entry in entries] == ["during.txt", "after.txt"]
        assert dbx.files_get_metadata("/before.txt").rev == before.rev
        # A token minted before the restart is still accepted.
        survivor = emulator.client(oauth2_access_token=minted._oauth2_access_token)
        assert survivor.users_get_current_account().account_id == emulator.account_id


def test_files_changed_in_the_root_while_stopped_are_adopted(tmp_path: Path) -> None:
    root = tmp_path / "seeded"
    (root / "Seed").mkdir(parents=True)
    (root / "Seed" / "one.txt").write_bytes(b"seeded one")
    (root / "two.txt").write_bytes(b"seeded two")
    with start_emulator(tmp_path, root=str(root)) as emulator:
        dbx = emulator.client()
        listing = dbx.files_list_folder("", recursive=True)
        assert sorted(summary(listing.entries)) == [("FileMetadata", "/seed/one.txt"),
                                                    ("FileMetadata", "/two.txt"),
                                                    ("FolderMetadata", "/seed")]
        one = dbx.files_get_metadata("/Seed/one.txt")
        assert one.content_hash == content_hash(b"seeded one")
        emulator.stop()
        (root / "two.txt").unlink()
        (root / "Seed" / "one.txt").write_bytes(b"edited while stopped")
        emulator.restart()
        dbx = emulator.client()
        entries, _, _ = drain(dbx, listing.cursor)
        assert sorted(summary(entries)) == [("DeletedMetadata", "/two.txt"),
                                            ("FileMetadata", "/seed/one.txt")]
        edited = dbx.files_get_metadata("/Seed/one.txt")
        assert edited.id == one.id and edited.rev != one.rev
        assert dbx.files_download("/Seed/one.txt")[1].content == b"edited while stopped"
