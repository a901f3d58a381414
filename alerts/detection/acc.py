"""The running state of one open window of one device (:class:`WindowAcc`), and its snapshot form.

Apart from :mod:`alerts.detection.window` because the detector keeps one or two of these per device for
100,000 devices: the layout is about memory and the snapshot format, not about the window rules.
"""

from __future__ import annotations

from array import array

_NEG_INF = float("-inf")


class WindowAcc:
    """Running state of one open window of one device: counts, sequential sums, maxima, sample times.

    Compact on purpose: ``v`` is one ``array('d')`` of ``[count x3, sum x3, max x3, unconverted oil-fume
    samples, lower-bound oil-fume samples]`` in :data:`alerts.detection.window.POLLUTANT_INDEX` order;
    ``ex`` is None until an excluded reading arrives, then ``{reason: readings}``.
    """

    __slots__ = ("start_ms", "n", "fan_on", "v", "times", "ex")

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.n = 0  # distinct judged readings (excluded ones are not counted)
        self.fan_on = 0  # judged readings with fan_on True or None
        self.v = array("d", (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, _NEG_INF, _NEG_INF, _NEG_INF, 0.0, 0.0))
        self.times = array("q")  # every distinct reading time, excluded ones too (duplicates)
        self.ex: dict[str, int] | None = None

    def add(
        self,
        time_ms: int,
        values: tuple[float | None, float | None, float | None],
        fan: bool | None,
        converted: bool = True,
        excluded: str = "",
        lower_bound: bool = False,
    ) -> bool:
        """Add one reading; False (nothing changed) when a reading with this ``time_ms`` was already added.

        ``converted`` False (``Reading.ref_converted``): the oil-fume value is the measured concentration;
        counted in :attr:`unconverted` when it is a sample. ``lower_bound`` (``Reading.lower_bound``):
        the oil-fume value is above the instrument's range; judged as it is, counted in
        :attr:`lower_bound` when it is a sample. ``excluded`` non-empty (``Reading.excluded``): the
        reading is no sample at all, only its time (a later reading at that time is a duplicate) and its
        reason (:attr:`excluded`) are kept."""
        times = self.times
        if times and time_ms <= times[-1] and time_ms in times:
            return False
        times.append(time_ms)
        if excluded:
            ex = self.ex
            if ex is None:
                ex = self.ex = {}
            ex[excluded] = ex.get(excluded, 0) + 1
            return True
        self.n += 1
        if fan is not False:
            self.fan_on += 1
        v = self.v
        for i in (0, 1, 2):
            x = values[i]
            if x is not None and x == x:  # not None, not NaN
                v[i] += 1.0
                v[3 + i] += x  # sequential, in arrival order (= event-time order when fed in order)
                if x > v[6 + i]:
                    v[6 + i] = x
                if i == 0:
                    if not converted:
                        v[9] += 1.0
                    if lower_bound:
                        v[10] += 1.0
        return True

    @property
    def unconverted(self) -> int:
        """Oil-fume samples of readings without reference conversion."""
        return int(self.v[9])

    @property
    def lower_bound(self) -> int:
        """Oil-fume samples above the instrument's range (HJ 212 flag ``T``)."""
        return int(self.v[10])

    @property
    def excluded(self) -> dict[str, int]:
        """Excluded readings by reason, sorted by reason (a new dict; empty when none)."""
        return dict(sorted(self.ex.items())) if self.ex else {}

    def stats(self, i: int) -> tuple[int, float, float]:
        """(samples, sum, max) of pollutant slot ``i``."""
        v = self.v
        return int(v[i]), v[3 + i], v[6 + i]

    def to_state(self) -> list:
        v = self.v
        return [
            self.start_ms,
            self.n,
            self.fan_on,
            [int(c) for c in v[0:3]],
            list(v[3:6]),
            [None if m == _NEG_INF else m for m in v[6:9]],
            self.times.tolist(),
            int(v[9]),
            int(v[10]),
            self.excluded,
        ]

    @classmethod
    def from_state(cls, s: list) -> WindowAcc:
        """Back from :meth:`to_state`; older snapshots lack the trailing fields (unconverted: snapshot
        version 1; lower-bound and excluded counts: versions 1 and 2) and load with zeros."""
        acc = cls(s[0])
        acc.n, acc.fan_on = s[1], s[2]
        maxs = [_NEG_INF if m is None else float(m) for m in s[5]]
        extra = [float(s[7]) if len(s) > 7 else 0.0, float(s[8]) if len(s) > 8 else 0.0]
        acc.v = array("d", [float(c) for c in s[3]] + [float(x) for x in s[4]] + maxs + extra)
        acc.times = array("q", s[6])
        if len(s) > 9 and s[9]:
            acc.ex = {str(k): int(c) for k, c in s[9].items()}
        return acc
