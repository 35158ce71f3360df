"""The dreamers of one room, stored as parallel lists in name order.

Column ``i`` of every list describes the ``i``-th dreamer by name, so loops
over the room are plain index loops with no per-dreamer objects, and every
sum runs in the same order on every node (floating-point sums depend on
order). Joins and leaves are rare and rebuild the name index; ticks only
read and write list slots.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from .traits import Traits

__all__ = ["NO_TELEMETRY", "DreamerTable"]

#: ``tel_age`` of a dreamer that never sent telemetry.
NO_TELEMETRY = 1 << 40


class DreamerTable:
    """Per-dreamer state; ``names`` is sorted and ``index`` maps name to column."""

    __slots__ = (
        "aro",
        "beta",
        "distress",
        "dlt",
        "eps",
        "eta",
        "fr_a",
        "fr_u",
        "fr_v",
        "frag",
        "gid",
        "glitch",
        "index",
        "mute",
        "names",
        "online",
        "pod",
        "release",
        "seq",
        "tel_a",
        "tel_age",
        "tel_v",
        "val",
    )

    #: Columns in snapshot order (``names`` first); all are lists.
    COLUMNS = (
        "names",
        "val",
        "aro",
        "eps",
        "dlt",
        "eta",
        "beta",
        "pod",
        "tel_v",
        "tel_a",
        "tel_age",
        "seq",
        "online",
        "mute",
        "glitch",
        "gid",
        "distress",
        "release",
        "fr_v",
        "fr_a",
        "fr_u",
        "frag",
    )

    def __init__(self) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        self.val: list[float] = []  # valence
        self.aro: list[float] = []  # arousal
        self.eps: list[float] = []  # expressiveness ε
        self.dlt: list[float] = []  # openness δ
        self.eta: list[float] = []  # amplification η
        self.beta: list[float] = []  # bias β
        self.pod: list[bool] = []  # has ever sent telemetry
        self.tel_v: list[float] = []  # last measured valence
        self.tel_a: list[float] = []  # last measured arousal
        self.tel_age: list[int] = []  # ticks since the last sample
        self.seq: list[int | None] = []  # seq of the last applied sample
        self.online: list[bool] = []  # pod online: sends contagion
        self.mute: list[int] = []  # outgoing contagion cut until this tick
        self.glitch: list[float] = []  # glitch load
        self.gid: list[int] = []  # id of the glitch carried (0: none)
        self.distress: list[int] = []  # consecutive low-valence/high-arousal ticks
        self.release: list[int] = []  # nightmare release until this tick
        self.fr_v: list[float] = []  # recent valence (exponential average)
        self.fr_a: list[float] = []  # recent arousal (exponential average)
        self.fr_u: list[float] = []  # recent squared deviation of arousal from fr_a
        self.frag: list[float] = []  # fragility, from the three above (see glitch.py)

    def __len__(self) -> int:
        return len(self.names)

    def add(
        self, name: str, traits: Traits, valence: float, arousal: float, fragility: float = 0.0
    ) -> int:
        """Insert a dreamer at its name position and return its column.

        Its recent averages start at ``valence`` and ``arousal``, steady, with
        that state's ``fragility``.
        """
        i = bisect_left(self.names, name)
        row: tuple[object, ...] = (
            name,
            valence,
            arousal,
            traits.expressiveness,
            traits.openness,
            traits.amplification,
            traits.bias,
            False,
            valence,
            arousal,
            NO_TELEMETRY,
            None,
            False,
            0,
            0.0,
            0,
            0,
            0,
            valence,
            arousal,
            0.0,
            fragility,
        )
        for column, value in zip(self.COLUMNS, row, strict=True):
            getattr(self, column).insert(i, value)
        self._reindex()
        return i

    def remove(self, name: str) -> None:
        i = self.index[name]
        for column in self.COLUMNS:
            del getattr(self, column)[i]
        self._reindex()

    def set_traits(self, i: int, traits: Traits) -> None:
        self.eps[i] = traits.expressiveness
        self.dlt[i] = traits.openness
        self.eta[i] = traits.amplification
        self.beta[i] = traits.bias

    def traits(self, i: int) -> Traits:
        return Traits(self.eps[i], self.dlt[i], self.eta[i], self.beta[i])

    def set_columns(self, columns: Mapping[str, list[Any]]) -> None:
        """Replace every column (a snapshot's, already type-checked; see :mod:`.snapshot`).

        Raises ValueError unless ``columns`` has every column, all of one
        length, with names sorted and unique.
        """
        if set(columns) != set(self.COLUMNS):
            raise ValueError("not the dreamer columns")
        if len({len(column) for column in columns.values()}) > 1:
            raise ValueError("dreamer columns of different lengths")
        names = columns["names"]
        if any(a >= b for a, b in pairwise(names)):
            raise ValueError("dreamer names are not sorted and unique")
        for name in self.COLUMNS:
            setattr(self, name, list(columns[name]))
        self._reindex()

    def _reindex(self) -> None:
        self.index = {name: i for i, name in enumerate(self.names)}
