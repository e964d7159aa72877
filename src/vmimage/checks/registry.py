"""The check registry: one check is one small function with frozen metadata.

``@check(...)`` validates the metadata when the module is imported and refuses a duplicate ID,
so a newcomer finds a rule from its ID with one search: ``grep -rn '"LNX-SWAP-NONE"' src``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmimage.findings import Outcome, Severity

if TYPE_CHECKING:
    from vmimage.checks.context import CheckContext

CheckResult = Outcome | Iterable[Outcome]
CheckFn = Callable[["CheckContext"], CheckResult]

#: Capabilities a check may need; the engine skips (with the reason) when the target lacks one.
CAPABILITIES = frozenset({"disk", "filesystem", "live"})
OS_FAMILIES = frozenset({"linux", "windows", "any"})
_ID_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$")
_REQ_RE = re.compile(r"^(?:[A-Z]{3}-[A-Z0-9-]+|MS-\d+(?:\.\d+)*|LISA-[a-z0-9_]+)$")


@dataclass(frozen=True, slots=True)
class CheckMeta:
    """Everything a report, a doc page or a profile needs to know about a check."""

    id: str
    title: str
    severity: Severity
    covers: tuple[str, ...]
    remediation: str
    os: str
    needs: frozenset[str]
    fn: CheckFn

    @property
    def module(self) -> str:
        """The module that defines the check: where to read its rule."""
        return self.fn.__module__


REGISTRY: dict[str, CheckMeta] = {}


def check(
    *,
    id: str,
    title: str,
    severity: Severity | str,
    covers: Iterable[str],
    remediation: str,
    os: str = "linux",
    needs: Iterable[str] = ("filesystem",),
) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check ``id``.

    ``covers`` lists requirement IDs of the guide (``LNX-SWAP``), Microsoft test IDs
    (``MS-41``) and LISA test names (``LISA-verify_no_swap_on_osdisk``).

    Raises:
        ValueError: a duplicate ID, a malformed ID or requirement, an unknown capability,
            or empty metadata. Raised at import time, so a broken check never ships.
    """
    meta_covers = tuple(covers)
    meta_needs = frozenset(needs)
    problems = []
    if not _ID_RE.match(id):
        problems.append(f"check ID {id!r} is not of the form AREA-NAME")
    if id in REGISTRY:
        problems.append(f"check ID {id!r} is registered twice")
    if not title.strip() or not remediation.strip():
        problems.append(f"check {id!r} needs a title and a remediation")
    if not meta_covers:
        problems.append(f"check {id!r} covers no requirement")
    problems += [f"check {id!r}: {r!r} is not a requirement ID" for r in meta_covers
                 if not _REQ_RE.match(r)]
    if id in meta_covers:
        problems.append(f"check {id!r}: a check ID is not a requirement ID")
    if not meta_needs <= CAPABILITIES:
        problems.append(f"check {id!r}: unknown capability {sorted(meta_needs - CAPABILITIES)}")
    if os not in OS_FAMILIES:
        problems.append(f"check {id!r}: unknown OS family {os!r}")
    if problems:
        raise ValueError("; ".join(problems))

    def register(fn: CheckFn) -> CheckFn:
        REGISTRY[id] = CheckMeta(
            id=id,
            title=title,
            severity=Severity(severity),
            covers=meta_covers,
            remediation=remediation,
            os=os,
            needs=meta_needs,
            fn=fn,
        )
        return fn

    return register
