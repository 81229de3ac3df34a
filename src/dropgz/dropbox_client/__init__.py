"""The Dropbox client side shared by the tiers: the SDK client factory, the transport that
redirects it to an emulator, and the account registry."""

from dropgz.dropbox_client.factory import make_dropbox

__all__ = ["make_dropbox"]
