"""The one rule registry: every rule of every family, with frozen metadata.

A rule is one small function with its metadata, registered by :func:`rule`. The families differ
only in what the function reads (its *subject*): a disk's metadata (``disk``), the operating
system inside an image, a directory or a live VM (``system``), an offer manifest
(``manifest``) or a SAS URI (``sas-uri``). Whatever the family, a rule has one ID that
``vmimage checks show ID`` finds, one severity that a profile may override, and the
requirement IDs it covers, e.g. ``@rule(id="LINUX-NO-SWAP", subject="system", ...)``.

This module is a leaf of the rules layer: it imports no rule. Which modules define rules is
the application layer's business (``vmimage.app.catalog``), so the registry never imports
upward.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from vmimage.findings import Outcome, Severity

RuleResult = Outcome | Iterable[Outcome]
RuleFn = Callable[[Any], RuleResult]
F = TypeVar("F", bound=Callable[..., RuleResult])


class Subject(StrEnum):
    """What a rule reads, and so which use case runs it."""

    DISK = "disk"          # a disk file's metadata: format, footer, size, allocation
    SYSTEM = "system"      # the operating system: files of an image, a directory or a live VM
    MANIFEST = "manifest"  # an offer manifest (offer.yaml)
    SAS_URI = "sas-uri"    # a SAS URI, and the blob it opens


#: Capabilities a rule may need; the engine skips (with the reason) when the target lacks one.
CAPABILITIES = frozenset({"disk", "filesystem", "live", "network", "local-disks", "at-rest"})
OS_FAMILIES = frozenset({"linux", "windows", "any"})
#: Disk roles; a disk or system rule says which roles it judges (others never see it).
ROLES = frozenset({"os-linux", "os-windows", "data"})
_ID_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$")
REQUIREMENT_RE = re.compile(r"^(?:[A-Z]{3}-[A-Z0-9-]+|MS-\d+(?:\.\d+)*|LISA-[a-z0-9_]+)$")


@dataclass(frozen=True, slots=True)
class RuleMeta:
    """Everything a report, a doc page or a profile needs to know about a rule."""

    id: str
    title: str
    severity: Severity
    covers: tuple[str, ...]
    remediation: str
    subject: Subject
    os: str
    needs: frozenset[str]
    roles: frozenset[str]
    fn: RuleFn

    @property
    def module(self) -> str:
        """The module that defines the rule: where to read it."""
        return self.fn.__module__

    def applies_to(self, role: str | None) -> bool:
        """Whether the rule judges a disk of ``role`` (rules without roles judge no disk)."""
        return role is None or role in self.roles


REGISTRY: dict[str, RuleMeta] = {}


def _default_roles(subject: Subject, os: str) -> frozenset[str]:
    if subject is Subject.DISK:
        return ROLES
    if subject is Subject.SYSTEM:
        return frozenset({f"os-{os}"}) if os != "any" else frozenset({"os-linux", "os-windows"})
    return frozenset()


def rule(
    *,
    id: str,
    title: str,
    severity: Severity | str,
    covers: Iterable[str],
    remediation: str,
    subject: Subject | str = Subject.SYSTEM,
    os: str = "linux",
    needs: Iterable[str] = (),
    roles: Iterable[str] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the rule ``id``.

    ``covers`` lists requirement IDs of the guide (``LNX-SWAP``), Microsoft test IDs
    (``MS-41``) and LISA test names (``LISA-verify_no_swap_on_osdisk``). ``roles`` defaults to
    every role for a disk rule and to the OS disk of ``os`` for a system rule.

    Raises:
        ValueError: a duplicate or malformed ID, a malformed requirement, an unknown subject,
            capability, OS family or role, or empty metadata. Raised at import time, so a
            broken rule never ships.
    """
    meta_covers = tuple(covers)
    meta_needs = frozenset(needs)
    problems = []
    try:
        kind = Subject(subject)
    except ValueError:
        raise ValueError(f"rule {id!r}: unknown subject {subject!r}") from None
    meta_roles = frozenset(roles) if roles is not None else _default_roles(kind, os)
    if kind is Subject.DISK:
        meta_needs |= {"disk"}  # a disk rule reads the disk file's metadata
    if not _ID_RE.match(id):
        problems.append(f"rule ID {id!r} is not of the form AREA-NAME")
    if id in REGISTRY:
        problems.append(f"rule ID {id!r} is registered twice")
    if not title.strip() or not remediation.strip():
        problems.append(f"rule {id!r} needs a title and a remediation")
    if not meta_covers:
        problems.append(f"rule {id!r} covers no requirement")
    problems += [f"rule {id!r}: {r!r} is not a requirement ID" for r in meta_covers
                 if not REQUIREMENT_RE.match(r)]
    if id in meta_covers:
        problems.append(f"rule {id!r}: a rule ID is not a requirement ID")
    if not meta_needs <= CAPABILITIES:
        problems.append(f"rule {id!r}: unknown capability {sorted(meta_needs - CAPABILITIES)}")
    if os not in OS_FAMILIES:
        problems.append(f"rule {id!r}: unknown OS family {os!r}")
    if not meta_roles <= ROLES:
        problems.append(f"rule {id!r}: unknown role {sorted(meta_roles - ROLES)}")
    if problems:
        raise ValueError("; ".join(problems))

    def register(fn: F) -> F:
        REGISTRY[id] = RuleMeta(id=id, title=title, severity=Severity(severity),
                                covers=meta_covers, remediation=remediation, subject=kind, os=os,
                                needs=meta_needs, roles=meta_roles, fn=fn)
        return fn

    return register


def rules_for(subject: Subject, *, os: str | None = None, role: str | None = None,
              ids: Iterable[str] | None = None) -> list[RuleMeta]:
    """The registered rules of one subject, in ID order: for an OS family, a disk role, or
    only those named.

    Raises:
        KeyError: a named ID is not registered (the message lists them).
    """
    metas = sorted((m for m in REGISTRY.values() if m.subject is subject), key=lambda m: m.id)
    if ids is not None:
        wanted = set(ids)
        unknown = wanted - REGISTRY.keys()
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        metas = [m for m in metas if m.id in wanted]
    if os is not None:
        metas = [m for m in metas if m.os in (os, "any")]
    return [m for m in metas if m.applies_to(role)]
