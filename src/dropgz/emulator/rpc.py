"""RPC routes (JSON in, JSON out): account, metadata, listing, delete, create folder, move.

Each handler takes the decoded argument (an SDK object) and returns the SDK result object;
namespace failures are wrapped here into the route's own error union.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dropbox import common, files, users, users_common

from dropgz.emulator.body import RequestBody
from dropgz.emulator.errors import LookupFailure, RouteError, WriteFailure

if TYPE_CHECKING:
    from dropgz.emulator.app import Emulator

# The emulated account's root namespace id (any stable number works).
ROOT_NAMESPACE_ID = "1000001"


def get_current_account(emu: Emulator, arg: None, body: RequestBody) -> users.FullAccount:
    account_id = emu.account_id
    return users.FullAccount(
        account_id=account_id,
        name=users.Name(given_name="Dropgz", surname="Emulator", familiar_name="Dropgz",
                        display_name="Dropgz Emulator", abbreviated_name="DE"),
        email="emulator@dropgz.invalid", email_verified=True, disabled=False, locale="en",
        referral_link="https://www.dropbox.com/referrals/emulator", is_paired=False,
        account_type=users_common.AccountType.basic,
        root_info=common.UserRootInfo(root_namespace_id=ROOT_NAMESPACE_ID,
                                      home_namespace_id=ROOT_NAMESPACE_ID),
        country="US")


def get_metadata(emu: Emulator, arg: files.GetMetadataArg, body: RequestBody) -> files.Metadata:
    try:
        return emu.namespace.lookup(arg.path).to_metadata()
    except LookupFailure as failure:
        deleted = (emu.namespace.last_deleted(arg.path)
                   if arg.include_deleted and failure.error.is_not_found() else None)
        if deleted is not None:
            return deleted.to_metadata()
        raise RouteError(files.GetMetadataError.path(failure.error)) from None


def list_folder(emu: Emulator, arg: files.ListFolderArg,
                body: RequestBody) -> files.ListFolderResult:
    return emu.lister.list_folder(arg)


def list_folder_continue(emu: Emulator, arg: files.ListFolderContinueArg,
                         body: RequestBody) -> files.ListFolderResult:
    return emu.lister.continue_(arg.cursor)


def list_folder_get_latest_cursor(emu: Emulator, arg: files.ListFolderArg,
                                  body: RequestBody) -> files.ListFolderGetLatestCursorResult:
    return emu.lister.latest_cursor(arg)


def _delete(emu: Emulator, arg: files.DeleteArg) -> files.Metadata:
    try:
        return emu.writer.delete(arg.path, parent_rev=arg.parent_rev).to_metadata()
    except LookupFailure as failure:
        raise RouteError(files.DeleteError.path_lookup(failure.error)) from None
    except WriteFailure as failure:
        raise RouteError(files.DeleteError.path_write(failure.error)) from None


def delete_v2(emu: Emulator, arg: files.DeleteArg, body: RequestBody) -> files.DeleteResult:
    return files.DeleteResult(metadata=_delete(emu, arg))


def delete_v1(emu: Emulator, arg: files.DeleteArg, body: RequestBody) -> files.Metadata:
    return _delete(emu, arg)


def create_folder_v2(emu: Emulator, arg: files.CreateFolderArg,
                     body: RequestBody) -> files.CreateFolderResult:
    try:
        entry = emu.writer.create_folder(arg.path, autorename=arg.autorename)
    except WriteFailure as failure:
        raise RouteError(files.CreateFolderError.path(failure.error)) from None
    return files.CreateFolderResult(metadata=entry.to_metadata())


def move_v2(emu: Emulator, arg: files.RelocationArg,
            body: RequestBody) -> files.RelocationResult:
    entry = emu.writer.move(arg.from_path, arg.to_path, autorename=arg.autorename)
    return files.RelocationResult(metadata=entry.to_metadata())
