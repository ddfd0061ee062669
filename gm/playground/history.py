"""A bounded record of per-step numbers for live charts: every point is kept until the record is
full, then every other point is dropped and only every other new point is kept from then on.

A playground can run for hundreds of thousands of steps while the page redraws its charts several
times a second; keeping every step would make each copy for a redraw grow without bound, while a
thinned record keeps the curve's shape at a fixed cost.
"""

from __future__ import annotations


class History:
    """Columns of numbers indexed by step, at most ``max_points`` long."""

    def __init__(self, *names: str, max_points: int = 4000):
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.names = ("step", *names)
        self.max_points = max_points
        self.stride = 1         # record one append in every `stride`
        self._appends = 0
        self.columns: dict[str, list[float]] = {name: [] for name in self.names}

    def append(self, step: int, **values: float) -> None:
        """Record ``values`` at ``step`` if this append falls on the current stride; a missing
        column gets NaN."""
        index, self._appends = self._appends, self._appends + 1
        if index % self.stride:
            return
        self.columns["step"].append(step)
        for name in self.names[1:]:
            self.columns[name].append(float(values.get(name, float("nan"))))
        if len(self.columns["step"]) > self.max_points:
            # Kept points are appends 0, s, 2s, ...; dropping every other leaves 0, 2s, 4s, ...
            self.stride *= 2
            self.columns = {name: col[::2] for name, col in self.columns.items()}

    def as_dict(self) -> dict[str, list[float]]:
        """A copy safe to hand to another thread."""
        return {name: list(col) for name, col in self.columns.items()}

    def __len__(self) -> int:
        return len(self.columns["step"])
