"""A communicator of one rank, for tests of the data-parallel step in one process.

What the collectives of a world of one do: nothing. The data-parallel Solver with
it must follow the ordinary Solver exactly.
"""

from __future__ import annotations


class OneRank:
    """The communicator interface of :mod:`xpnet.distributed` for a world of one."""

    rank, world_size, is_root = 0, 1, True

    def all_reduce(self, arrays, what=""):
        return list(arrays)

    def broadcast(self, arrays, src=0, what=""):
        return list(arrays)

    def sum_host(self, values, what=""):
        return [float(v) for v in values]
