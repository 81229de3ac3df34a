"""Several emulated users (``--accounts N``): identities, isolation, tokens, unlink, revoke."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dropbox
import pytest
import requests
from dropbox.exceptions import ApiError, AuthError

from tests.fixtures.emulator import EmulatorProcess, start_emulator


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator with three users, shared by the tests that only read or write files."""
    with start_emulator(tmp_path_factory.mktemp("three"), accounts=3) as process:
        yield process


def test_ready_line_lists_every_account(three: EmulatorProcess) -> None:
    ids = [account.account_id for account in three.accounts]
    assert len(ids) == 3 == len(set(ids))
    assert ids[0] == three.account_id and three.accounts[0].token == three.token
    assert three.accounts[0].root == three.root
    for account in three.accounts:
        assert account.account_id.startswith("dbid:") and len(account.account_id) == 40
        assert account.email.endswith("@dropgz.invalid") and account.display_name
        assert account.token and account.refresh_token
    emails = {account.email for account in three.accounts}
    assert len(emails) == 3


def test_each_token_acts_as_its_own_account(three: EmulatorProcess) -> None:
    for number, account in enumerate(three.accounts, start=1):
        me = three.client(account=number).users_get_current_account()
        assert me.account_id == account.account_id
        assert me.email == account.email
        assert me.name.display_name == account.display_name


def test_identically_named_files_stay_apart(three: EmulatorProcess) -> None:
    # Given the same path written by each account
    for number in (1, 2, 3):
        three.client(account=number).files_upload(b"content of %d" % number, "/same/name.txt",
                                                  mode=dropbox.files.WriteMode.overwrite)
    # Then each account reads its own bytes, on disk in its own root
    for number, account in enumerate(three.accounts, start=1):
        _, response = three.client(account=number).files_download("/same/name.txt")
        assert response.content == b"content of %d" % number
        assert (account.root / "same" / "name.txt").read_bytes() == b"content of %d" % number
    # And a deletion in one account leaves the others alone
    three.client(account=2).files_delete_v2("/same/name.txt")
    with pytest.raises(ApiError):
        three.client(account=2).files_get_metadata("/same/name.txt")
    assert three.client(account=3).files_get_metadata("/same/name.txt").size == len(b"content of 3")


def test_cursors_and_journals_are_per_account(three: EmulatorProcess) -> None:
    first, second = three.client(account=1), three.client(account=2)
    cursor = first.files_list_folder_get_latest_cursor("", recursive=True).cursor
    second.files_upload(b"only in two", "/journal/two.txt")
    assert first.files_list_folder_continue(cursor).entries == []
    first.files_upload(b"only in one", "/journal/one.txt")
    names = [entry.name for entry in first.files_list_folder_continue(cursor).entries]
    assert "one.txt" in names and "two.txt" not in names
    # A cursor of account 1 means nothing to account 2: reset, as a foreign cursor.
    with pytest.raises(ApiError) as caught:
        second.files_list_folder_continue(cursor)
    assert caught.value.error.is_reset()


def test_upload_sessions_belong_to_their_account(three: EmulatorProcess) -> None:
    started = three.client(account=1).files_upload_session_start(b"part", close=True)
    cursor = dropbox.files.UploadSessionCursor(started.session_id, offset=4)
    commit = dropbox.files.CommitInfo("/sessions/stolen.txt")
    with pytest.raises(ApiError) as caught:
        three.client(account=2).files_upload_session_finish(b"", cursor, commit)
    assert caught.value.error.is_lookup_failed()
    assert caught.value.error.get_lookup_failed().is_not_found()


def test_refresh_tokens_mint_tokens_of_their_account(three: EmulatorProcess) -> None:
    for number in (2, 3):
        dbx = three.refreshing_client(account=number)
        assert dbx.users_get_current_account().account_id == three.account(number).account_id


def test_compact_journal_of_one_account(three: EmulatorProcess) -> None:
    first, third = three.client(account=1), three.client(account=3)
    cursors = [dbx.files_list_folder_get_latest_cursor("").cursor for dbx in (first, third)]
    for dbx in (first, third):
        dbx.files_upload(b"after the cursor", "/compact.txt",
                         mode=dropbox.files.WriteMode.overwrite)
    three.compact_journal(three.account(3).account_id)
    with pytest.raises(ApiError) as caught:
        third.files_list_folder_continue(cursors[1])
    assert caught.value.error.is_reset()
    assert first.files_list_folder_continue(cursors[0]).cursor


def _admin(emulator: EmulatorProcess, name: str, body: dict, token: str) -> requests.Response:
    return requests.post(f"{emulator.url}/_emulator/{name}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {token}"})


def test_unlink_kills_every_token_of_that_account_only(tmp_path: Path) -> None:
    with start_emulator(tmp_path, accounts=2) as emulator:
        victim, bystander = emulator.account(2), emulator.account(1)
        minted = emulator.refreshing_client(account=2)
        minted.users_get_current_account()  # holds a minted access token now
        # When the user removes the app in their Dropbox settings
        answer = emulator.unlink(victim.account_id)
        assert answer["account_id"] == victim.account_id and answer["revoked_tokens"] >= 2
        # Then the fixed token and the minted one are refused as Dropbox refuses them
        for dbx in (emulator.client(account=2), minted):
            with pytest.raises(AuthError) as caught:
                dbx.users_get_current_account()
            assert caught.value.error.is_invalid_access_token()
        raw = requests.post(f"{emulator.url}/2/users/get_current_account", timeout=10,
                            headers={"Authorization": f"Bearer {victim.token}"})
        assert raw.status_code == 401 and raw.json()["error"][".tag"] == "invalid_access_token"
        # And the refresh token gets invalid_grant
        refresh = requests.post(f"{emulator.url}/oauth2/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": victim.refresh_token,
            "client_id": emulator.app_key, "client_secret": emulator.app_secret})
        assert refresh.status_code == 400
        assert refresh.json() == {"error": "invalid_grant",
                                  "error_description": "refresh token is invalid or revoked"}
        with pytest.raises(AuthError) as refused:
            emulator.refreshing_client(account=2).users_get_current_account()
        assert refused.value.error.is_invalid_access_token()
        # The other account is untouched; the admin routes still open with the unlinked token
        assert emulator.client(account=1).users_get_current_account().account_id == \
            bystander.account_id
        assert _admin(emulator, "reset-stats", {}, victim.token).status_code == 200
        # The unlink survives a restart on the same root
        emulator.restart()
        with pytest.raises(AuthError):
            emulator.client(account=2).users_get_current_account()


def test_unlink_of_an_unknown_account_is_a_400(three: EmulatorProcess) -> None:
    answer = _admin(three, "unlink", {"account_id": "dbid:nobody"}, three.token)
    assert answer.status_code == 400 and "unknown account_id" in answer.text


def test_revoke_disables_the_token_and_its_refresh_token(tmp_path: Path) -> None:
    with start_emulator(tmp_path, accounts=2) as emulator:
        # Given two access tokens minted from account 2's refresh token
        one, two = emulator.refreshing_client(account=2), emulator.refreshing_client(account=2)
        one.users_get_current_account()
        two.users_get_current_account()
        # When one of them is revoked
        one.auth_token_revoke()
        # Then both tokens and the refresh token behind them are dead
        with pytest.raises(AuthError):
            one.users_get_current_account()
        with pytest.raises(AuthError):
            dropbox.Dropbox(two._oauth2_access_token,
                            session=emulator.session()).users_get_current_account()
        with pytest.raises(AuthError):
            emulator.refreshing_client(account=2).users_get_current_account()
        # While account 2's fixed token and account 1 carry on
        assert emulator.client(account=2).users_get_current_account()
        assert emulator.refreshing_client(account=1).users_get_current_account()
        # And a revoked fixed token is dead too, for that account only
        emulator.client(account=2).auth_token_revoke()
        with pytest.raises(AuthError):
            emulator.client(account=2).users_get_current_account()
        assert emulator.client(account=1).users_get_current_account()


@pytest.mark.parametrize(("flags", "complaint"), [
    ({"accounts": 0}, "accounts must be between 1 and 1000"),
    ({"account_id": "dbid:AADdropgzEmulatorAccountId000000002", "accounts": 2},
     "generates for another account"),
])
def test_bad_account_flags_exit_2(flags: dict, complaint: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.fixtures.emulator import _flag_args
    result = subprocess.run([sys.executable, "-m", "dropgz.emulator", "--root", str(tmp_path),
                             *_flag_args(flags)], capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert complaint in result.stderr and "Traceback" not in result.stderr
