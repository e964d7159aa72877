"""One image checked twice, offline and after its first boot: which checks changed.

The publishers' most common surprise (certification-research.md §5) is what the first boot
changes: swap made by cloud-init or the agent, a user restored, host keys generated. The same
rules run on the image file and on the running VM; a check whose status differs between the
two is what ``check --boot`` points at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vmimage.findings import Finding, Status

#: A check with several findings takes its worst: a failure anywhere fails it.
_RANK = {Status.PASS: 0, Status.SKIP: 1, Status.WARNING: 2, Status.FAIL: 3}
#: What a check that did not run on one side shows there.
ABSENT = "-"


def statuses(findings: Iterable[Finding]) -> dict[str, str]:
    """Each check ID's status: its worst finding's (``waived`` when a waiver accepted it)."""
    worst: dict[str, Finding] = {}
    for f in findings:
        seen = worst.get(f.check_id)
        if seen is None or _RANK[f.status] > _RANK[seen.status]:
            worst[f.check_id] = f
    return {cid: "waived" if f.waived else str(f.status) for cid, f in worst.items()}


@dataclass(frozen=True)
class Row:
    """One check, offline and after first boot."""

    check_id: str
    offline: str
    live: str

    @property
    def changed(self) -> bool:
        """The two statuses differ, and the check ran on both sides (a disk rule that the
        running VM cannot examine is not a change)."""
        return ABSENT not in (self.offline, self.live) and self.offline != self.live \
            and Status.SKIP not in (self.offline, self.live)

    def to_dict(self) -> dict[str, object]:
        """The row as the JSON report writes it."""
        return {"check_id": self.check_id, "offline": self.offline, "live": self.live,
                "changed": self.changed}


def rows(offline: Iterable[Finding], live: Iterable[Finding]) -> list[Row]:
    """Every check of either side, changed ones first, then by ID."""
    before, after = statuses(offline), statuses(live)
    table = [Row(cid, before.get(cid, ABSENT), after.get(cid, ABSENT))
             for cid in sorted(before.keys() | after.keys())]
    return sorted(table, key=lambda r: (not r.changed, r.check_id))
