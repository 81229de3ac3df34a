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
    from dropgz.emulator.accounts import Account

def get_current_account(account: Account, arg: None, body: RequestBody) -> users.FullAccount:
    who = account.profile
    return users.FullAccount(
        account_id=who.account_id,
        name=users.Name(given_name=who.given_name, surname=who.surname,
                        familiar_name=who.given_name, display_name=who.display_name,
                        abbreviated_name=who.given_name[:1] + who.surname[:1]),
        email=who.email, email_verified=True, disabled=False, locale="en",
        referral_link="https://www.dropbox.com/referrals/emulator", is_paired=False,
        account_type=users_common.AccountType.basic,
        root_info=common.UserRootInfo(root_namespace_id=who.namespace_id,
                                      home_namespace_id=who.namespace_id),
        country="US")


def get_metadata(account: Account, arg: files.GetMetadataArg,
                 body: RequestBody) -> files.Metadata:
    try:
        return account.namespace.lookup(arg.path).to_metadata()
    except LookupFailure as failure:
        deleted = (account.namespace.last_deleted(arg.path)
                   if arg.include_deleted and failure.error.is_not_found() else None)
        if deleted is not None:
            return deleted.to_metadata()
        raise RouteError(files.GetMetadataError.path(failure.error)) from None


def list_folder(account: Account, arg: files.ListFolderArg,
                body: RequestBody) -> files.ListFolderResult:
    return account.lister.list_folder(arg)


def list_folder_continue(account: Account, arg: files.ListFolderContinueArg,
                         body: RequestBody) -> files.ListFolderResult:
    return account.lister.continue_(arg.cursor)


def list_folder_get_latest_cursor(account: Account, arg: files.ListFolderArg,
                                  body: RequestBody) -> files.ListFolderGetLatestCursorResult:
    return account.lister.latest_cursor(arg)


def _delete(account: Account, arg: files.DeleteArg) -> files.Metadata:
    try:
        return account.writer.delete(arg.path, parent_rev=arg.parent_rev).to_metadata()
    except LookupFailure as failure:
        raise RouteError(files.DeleteError.path_lookup(failure.error)) from None
    except WriteFailure as failure:
        raise RouteError(files.DeleteError.path_write(failure.error)) from None


def delete_v2(account: Account, arg: files.DeleteArg, body: RequestBody) -> files.DeleteResult:
    return files.DeleteResult(metadata=_delete(account, arg))


def delete_v1(account: Account, arg: files.DeleteArg, body: RequestBody) -> files.Metadata:
    return _delete(account, arg)


def create_folder_v2(account: Account, arg: files.CreateFolderArg,
                     body: RequestBody) -> files.CreateFolderResult:
    try:
        entry = account.writer.create_folder(arg.path, autorename=arg.autorename)
    except WriteFailure as failure:
        raise RouteError(files.CreateFolderError.path(failure.error)) from None
    return files.CreateFolderResult(metadata=entry.to_metadata())


def move_v2(account: Account, arg: files.RelocationArg,
            body: RequestBody) -> files.RelocationResult:
    entry = account.writer.move(arg.from_path, arg.to_path, autorename=arg.autorename)
    return files.RelocationResult(metadata=entry.to_metadata())


def copy_v2(account: Account, arg: files.RelocationArg,
            body: RequestBody) -> files.RelocationResult:
    entry = account.writer.copy(arg.from_path, arg.to_path, autorename=arg.autorename)
    return files.RelocationResult(metadata=entry.to_metadata())
