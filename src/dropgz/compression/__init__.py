"""The compression tier: :mod:`.worker` consumes the work queue; :mod:`.compress` handles one
file (download, :mod:`.gzstream`, upload) with bounded memory."""
