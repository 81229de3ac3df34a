"""Operator code beside :mod:`dropgz.cli`: the single-host supervisor, process helpers, the
offline demo and its samples, backfill and the per-host ledger. Only this package and the CLI
import across tiers."""
