"""The read models' tables and the queries the reports run on them: the part of the read side
that ``reports`` builds its DataFrames from, as one public namespace."""

from projections._around import around
from projections._leases import LEASE_ORDER, LEASES, in_lease_order, read_usage, select_usage
from projections._timeline import TIMELINE, readable_account, require_account, version_at
from projections._usage_as_of import read_usage_as_of

__all__ = [
    "LEASES",
    "LEASE_ORDER",
    "TIMELINE",
    "around",
    "in_lease_order",
    "read_usage",
    "read_usage_as_of",
    "readable_account",
    "require_account",
    "select_usage",
    "version_at",
]
