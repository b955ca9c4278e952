"""A data-parallel world as plain data: ranks, sizes, this rank's share of a batch or a split. No torch here, so
configurations can check a batch against a world size cheaply (`vggcore.train.distributed` runs it).
"""

from __future__ import annotations



