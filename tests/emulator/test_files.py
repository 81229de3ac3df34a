"""RPC and content routes through the unmodified SDK, over HTTP and HTTPS."""

from __future__ import annotations

import dropbox
import pytest
from dropbox import files
from dropbox.content_hash import content_hash
from dropbox.exceptions import ApiError

from tests.fixtures.emulator import EmulatorProcess


def test_current_account_is_the_configured_one(dbx: dropbox.Dropbox,
                                               server: EmulatorProcess) -> None:
    account = dbx.users_get_current_account()
    assert account.account_id == server.account_id
    assert account.account_id.startswith("dbid:") and len(account.account_id) == 40


def test_upload_then_metadata_download_and_disk_agree(dbx: dropbox.Dropbox, folder: str,
                                                      server: EmulatorProcess) -> None:
    data = b"hello dropgz\n" * 1000
    uploaded = dbx.files_upload(data, f"{folder}/Docs/Report.TXT")

    assert uploaded.name == "Report.TXT"
    assert uploaded.path_display == f"{folder}/Docs/Report.TXT"
    assert uploaded.path_lower == uploaded.path_display.lower()
    assert uploaded.size == len(data)
    assert uploaded.content_hash == content_hash(data)
    assert uploaded.id.startswith("id:")
    assert len(uploaded.rev) >= 9 and int(uploaded.rev, 16) >= 0
    # Case-insensitive lookup returns the same entry.
    again = dbx.files_get_metadata(uploaded.path_lower.upper())
    assert (again.id, again.rev, again.path_display) == (uploaded.id, uploaded.rev,
                                                        uploaded.path_display)
    metadata, response = dbx.files_download(f"{folder}/docs/report.txt")
    with response:
        assert response.content == data
    assert metadata.rev == uploaded.rev
    # The files are really kept under --root, at their display path.
    assert (server.root / folder[1:] / "Docs" / "Report.TXT").read_bytes() == data


def test_overwrite_keeps_id_and_makes_new_rev(dbx: dropbox.Dropbox, folder: str) -> None:
    first = dbx.files_upload(b"one", f"{folder}/f.txt")
    second = dbx.files_upload(b"two", f"{folder}/f.txt", mode=files.WriteMode.overwrite)
    assert second.id == first.id
    assert second.rev != first.rev
    assert second.content_hash == content_hash(b"two")
    # Identical content makes no new revision (Dropbox dedups it too).
    same = dbx.files_upload(b"two", f"{folder}/f.txt", mode=files.WriteMode.overwrite)
    assert same.rev == second.rev


def test_add_mode_conflicts_and_autorenames(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"original", f"{folder}/a.txt")
    with pytest.raises(ApiError) as caught:
        dbx.files_upload(b"other", f"{folder}/a.txt")
    reason = caught.value.error.get_path().reason
    assert reason.is_conflict() and reason.get_conflict().is_file()

    renamed = dbx.files_upload(b"other", f"{folder}/a.txt", autorename=True)
    assert renamed.path_display == f"{folder}/a (1).txt"
    # Same content in add mode is not a conflict unless strict_conflict is set.
    assert dbx.files_upload(b"original", f"{folder}/a.txt").path_display == f"{folder}/a.txt"
    with pytest.raises(ApiError):
        dbx.files_upload(b"original", f"{folder}/a.txt", strict_conflict=True)


def test_update_mode_checks_the_rev(dbx: dropbox.Dropbox, folder: str) -> None:
    first = dbx.files_upload(b"v1", f"{folder}/u.txt")
    second = dbx.files_upload(b"v2", f"{folder}/u.txt", mode=files.WriteMode.update(first.rev))
    assert second.id == first.id and second.rev != first.rev
    with pytest.raises(ApiError) as caught:  # first.rev is stale now
        dbx.files_upload(b"v3", f"{folder}/u.txt", mode=files.WriteMode.update(first.rev))
    assert caught.value.error.get_path().reason.get_conflict().is_file()
    assert dbx.files_download(f"{folder}/u.txt")[1].content == b"v2"


def test_upload_under_a_file_is_a_file_ancestor_conflict(dbx: dropbox.Dropbox,
                                                         folder: str) -> None:
    dbx.files_upload(b"x", f"{folder}/plain")
    with pytest.raises(ApiError) as caught:
        dbx.files_upload(b"y", f"{folder}/plain/inside.txt")
    assert caught.value.error.get_path().reason.get_conflict().is_file_ancestor()


def test_content_hash_mismatch_is_refused(dbx: dropbox.Dropbox, folder: str) -> None:
    with pytest.raises(ApiError) as caught:
        dbx.files_upload(b"payload", f"{folder}/h.txt", content_hash=content_hash(b"other"))
    assert caught.value.error.is_content_hash_mismatch()
    with pytest.raises(ApiError) as missing:
        dbx.files_get_metadata(f"{folder}/h.txt")
    assert missing.value.error.get_path().is_not_found()


def test_payload_too_large(dbx: dropbox.Dropbox, folder: str, server: EmulatorProcess) -> None:
    server.configure(upload_limit=1024)
    with pytest.raises(ApiError) as caught:
        dbx.files_upload(b"x" * 1025, f"{folder}/big.bin")
    assert caught.value.error.is_payload_too_large()
    assert dbx.files_upload(b"x" * 1024, f"{folder}/ok.bin").size == 1024  # same connection


def test_not_found_errors(dbx: dropbox.Dropbox, folder: str) -> None:
    with pytest.raises(ApiError) as metadata:
        dbx.files_get_metadata(f"{folder}/missing")
    assert metadata.value.error.get_path().is_not_found()
    with pytest.raises(ApiError) as download:
        dbx.files_download(f"{folder}/missing")
    assert download.value.error.get_path().is_not_found()
    with pytest.raises(ApiError) as listing:
        dbx.files_list_folder(f"{folder}/missing")
    assert listing.value.error.get_path().is_not_found()
    with pytest.raises(ApiError) as delete:
        dbx.files_delete_v2(f"{folder}/missing")
    assert delete.value.error.get_path_lookup().is_not_found()


def test_download_a_folder_is_not_file(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_create_folder_v2(f"{folder}/dir")
    with pytest.raises(ApiError) as caught:
        dbx.files_download(f"{folder}/dir")
    assert caught.value.error.get_path().is_not_file()


def test_create_folder_conflicts_and_autorename(dbx: dropbox.Dropbox, folder: str) -> None:
    created = dbx.files_create_folder_v2(f"{folder}/Sub").metadata
    assert isinstance(created, files.FolderMetadata) and created.name == "Sub"
    with pytest.raises(ApiError) as caught:
        dbx.files_create_folder_v2(f"{folder}/sub")
    assert caught.value.error.get_path().get_conflict().is_folder()
    renamed = dbx.files_create_folder_v2(f"{folder}/sub", autorename=True).metadata
    assert renamed.path_display == f"{folder}/sub (1)"


@pytest.mark.filterwarnings("ignore:delete is deprecated:DeprecationWarning")
def test_delete_v2_and_v1(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"1", f"{folder}/d/one.txt")
    dbx.files_upload(b"2", f"{folder}/d/two.txt")
    deleted = dbx.files_delete_v2(f"{folder}/d/one.txt").metadata
    assert isinstance(deleted, files.FileMetadata) and deleted.name == "one.txt"
    folder_deleted = dbx.files_delete(f"{folder}/d")  # v1 answers the Metadata itself
    assert isinstance(folder_deleted, files.FolderMetadata)
    with pytest.raises(ApiError):
        dbx.files_get_metadata(f"{folder}/d/two.txt")
    gone = dbx.files_get_metadata(f"{folder}/d", include_deleted=True)
    assert isinstance(gone, files.DeletedMetadata)


def test_move_keeps_ids_and_moves_children(dbx: dropbox.Dropbox, folder: str,
                                           server: EmulatorProcess) -> None:
    inner = dbx.files_upload(b"inner", f"{folder}/src/in.txt")
    moved = dbx.files_move_v2(f"{folder}/src", f"{folder}/dst/renamed").metadata
    assert moved.path_display == f"{folder}/dst/renamed"
    child = dbx.files_get_metadata(f"{folder}/dst/renamed/in.txt")
    assert child.id == inner.id
    assert (server.root / folder[1:] / "dst" / "renamed" / "in.txt").read_bytes() == b"inner"
    with pytest.raises(ApiError) as caught:
        dbx.files_get_metadata(f"{folder}/src")
    assert caught.value.error.get_path().is_not_found()
    # A case-only rename is allowed and keeps the id.
    recased = dbx.files_move_v2(f"{folder}/dst/renamed", f"{folder}/dst/RENAMED").metadata
    assert recased.path_display == f"{folder}/dst/RENAMED" and recased.id == moved.id


def test_move_errors(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"a", f"{folder}/a.txt")
    dbx.files_upload(b"b", f"{folder}/b.txt")
    dbx.files_create_folder_v2(f"{folder}/dir")
    with pytest.raises(ApiError) as missing:
        dbx.files_move_v2(f"{folder}/nope", f"{folder}/x")
    assert missing.value.error.get_from_lookup().is_not_found()
    with pytest.raises(ApiError) as taken:
        dbx.files_move_v2(f"{folder}/a.txt", f"{folder}/b.txt")
    assert taken.value.error.get_to().get_conflict().is_file()
    with pytest.raises(ApiError) as into_itself:
        dbx.files_move_v2(f"{folder}/dir", f"{folder}/dir/deeper")
    assert into_itself.value.error.is_cant_move_folder_into_itself()
    renamed = dbx.files_move_v2(f"{folder}/a.txt", f"{folder}/b.txt", autorename=True)
    assert renamed.metadata.path_display == f"{folder}/b (1).txt"


@pytest.mark.parametrize("bad_path", [
    "/../escape.txt", "/a/../../escape.txt", "/a/./b.txt", "/nul\x00byte.txt", "/a//b.txt",
    "/trailing/", "/.dropgz-emulator/state.sqlite3", "/" + "n" * 256,
])
def test_path_escape_and_malformed_paths_are_refused(bad_path: str,
                                                     http_server: EmulatorProcess) -> None:
    dbx = http_server.client()
    with pytest.raises(ApiError) as upload:
        dbx.files_upload(b"evil", bad_path)
    assert upload.value.error.get_path().reason.is_malformed_path()
    with pytest.raises(ApiError) as metadata:
        dbx.files_get_metadata(bad_path)
    assert metadata.value.error.get_path().is_malformed_path()
    with pytest.raises(ApiError) as download:
        dbx.files_download(bad_path)
    assert download.value.error.get_path().is_malformed_path()
    assert not (http_server.root.parent / "escape.txt").exists()


def test_id_paths_resolve(dbx: dropbox.Dropbox, folder: str) -> None:
    uploaded = dbx.files_upload(b"by id", f"{folder}/byid.txt")
    assert dbx.files_get_metadata(uploaded.id).path_display == f"{folder}/byid.txt"
    assert dbx.files_download(uploaded.id)[1].content == b"by id"
