"""Which bytes of a VHD go into Put Page calls, and what a page blob already holds.

Azure's rules for Put Page: at most 4 MiB per call, start and length multiples of 512 (the SDK
does not enforce the 4 MiB and Azurite accepts 8 MiB, so we do). Chunks sit on a fixed 4 MiB
grid clipped to the file's data extents (SEEK_DATA/SEEK_HOLE), so two runs over the same file
cut the same chunks and a resumed upload can tell, chunk by chunk, what the blob already has.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from vmimage.disk.sparse import data_extents

PAGE = 512
MAX_PUT = 4 * 1024 * 1024
#: Azure's largest page blob (the SDK and Azurite allow more).
MAX_PAGE_BLOB = 8 * 1024**4


@dataclass(frozen=True, slots=True)
class Chunk:
    """``length`` bytes at ``offset``: one Put Page call at most."""

    offset: int
    length: int

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.offset + self.length


def aligned_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """The file's data extents widened to 512-byte pages, merged, within ``[0, size)``."""
    merged: list[tuple[int, int]] = []
    for offset, length in data_extents(fd, 0, size):
        start = offset - offset % PAGE
        end = min(size, -(-(offset + length) // PAGE) * PAGE)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def chunks(extents: Iterable[tuple[int, int]], grid: int = MAX_PUT) -> Iterator[Chunk]:
    """Cut 512-aligned ``(start, end)`` extents at every multiple of ``grid``."""
    if grid % PAGE or grid > MAX_PUT or grid <= 0:
        raise ValueError(f"chunk grid {grid} must be a multiple of 512 up to 4 MiB")
    for start, end in extents:
        pos = start
        while pos < end:
            stop = min(end, (pos // grid + 1) * grid)
            yield Chunk(pos, stop - pos)
            pos = stop


class RangeSet:
    """Sorted, merged half-open byte ranges: the pages a blob holds, or the chunks we sent."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in sorted(ranges):
            self._append(start, end)

    def _append(self, start: int, end: int) -> None:
        if end <= start:
            return
        if self._ends and start <= self._ends[-1]:
            self._ends[-1] = max(self._ends[-1], end)
        else:
            self._starts.append(start)
            self._ends.append(end)

    @classmethod
    def from_page_ranges(cls, items: Iterable[object]) -> RangeSet:
        """From the SDK's ``PageRange`` objects (inclusive ``end``); cleared ranges are skipped."""
        pairs = []
        for item in items:
            if getattr(item, "cleared", False):
                continue
            start, last = int(getattr(item, "start")), int(getattr(item, "end"))  # noqa: B009
            pairs.append((start, last + 1))
        return cls(pairs)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    @property
    def total(self) -> int:
        """Bytes covered."""
        return sum(e - s for s, e in self)

    def covers(self, start: int, end: int) -> bool:
        """Whether every byte of ``[start, end)`` is inside one range."""
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def minus(self, other: RangeSet) -> RangeSet:
        """The parts of these ranges that ``other`` does not cover."""
        out: list[tuple[int, int]] = []
        theirs = list(other)
        j = 0
        for start, end in self:
            pos = start
            while j < len(theirs) and theirs[j][1] <= pos:
                j += 1
            k = j
            while pos < end:
                if k >= len(theirs) or theirs[k][0] >= end:
                    out.append((pos, end))
                    break
                o_start, o_end = theirs[k]
                if o_start > pos:
                    out.append((pos, o_start))
                pos = max(pos, o_end)
                k += 1
        return RangeSet(out)
