"""Operations, the plan they make, and applying it.

An operation is one small function registered with :func:`operation`, with frozen metadata
(name, one-line heading, on by default or not, the check IDs it makes pass, what waagent's
deprovision does alike). It never changes anything: it looks at the root and returns the
:class:`Action` objects it would take, each with its path and reason. The plan is shown;
:func:`apply` then carries the actions out. Because every operation plans from what it finds,
a second run after a complete one plans nothing, and a run killed half-way is completed by the
next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vmimage.generalize.rootfs import Entry, OverlayTarget, WritableRoot, under
from vmimage.targets.paths import normalize
from vmimage.targets.rootdir import RootDirTarget


@dataclass(frozen=True)
class Action:
    """One change: ``remove`` a path, or ``write`` new content to it."""

    operation: str
    kind: str  # "remove" | "write"
    path: str
    reason: str
    content: str | None = None
    mode: int | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--format json`` (content left out: it may be large)."""
        return {"operation": self.operation, "action": self.kind, "path": self.path,
                "reason": self.reason}


@dataclass(frozen=True)
class Note:
    """A warning in the plan: something the operation sees but does not change (a swap
    partition, another user's authorized_keys kept), with what to do about it."""

    operation: str
    text: str

    def to_dict(self) -> dict[str, str]:
        """Plain data for ``--format json`` and the worker's answer."""
        return {"operation": self.operation, "text": self.text}


@dataclass(frozen=True)
class Options:
    """What the command line tells the operations beyond choosing them."""

    #: ``--user NAME``: the build user to delete with its home (waagent's ``+user``).
    user: str | None = None
    #: The policy profile whose rules the configuration fixes satisfy (``--profile``).
    profile: str = "azure-current"
    #: ``--live-host``: the target may be the running system's own ``/`` (run inside the
    #: build VM before capturing it, as ``waagent -deprovision`` is).
    live_host: bool = False


NO_OPTIONS = Options()

Planner = Callable[[WritableRoot, Options], Iterable[Action | Note]]


@dataclass(frozen=True)
class Operation:
    """An operation's metadata and its planner."""

    name: str
    heading: str
    default: bool
    fixes: tuple[str, ...]
    waagent: str  # what waagent -deprovision does alike ("" when it does nothing of the kind)
    plan: Planner = field(compare=False)


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, heading: str, *, fixes: tuple[str, ...] = (), default: bool = True,
              waagent: str = "") -> Callable[[Planner], Planner]:
    """Register a planner under ``name`` (names are unique)."""

    def register(fn: Planner) -> Planner:
        if name in OPERATIONS:
            raise ValueError(f"operation {name} registered twice")
        OPERATIONS[name] = Operation(name, heading, default, fixes, waagent, fn)
        return fn

    return register


@dataclass
class Plan:
    """The actions of the chosen operations, in operation order."""

    operations: list[Operation]
    actions: list[Action]
    warnings: list[Note] = field(default_factory=list)

    @property
    def fixes(self) -> list[str]:
        """The check IDs the chosen operations claim, to run after applying."""
        return sorted({c for op in self.operations for c in op.fixes})

    def to_dict(self) -> dict[str, object]:
        """The actions, the warnings and the checks claimed, for ``--format json``."""
        return {"plan": [a.to_dict() for a in self.actions],
                "warnings": [w.to_dict() for w in self.warnings], "checks": self.fixes}


class PlannedRoot(WritableRoot):
    """The root as it will be once the actions planned so far are applied.

    Operations plan one after the other, and two may change one file: ``root-password``
    locks root in /etc/shadow, then ``user-account`` removes the build user's line from it.
    Each must start from what the one before it planned, or the second write would put back
    what the first removed. So reads see the planned writes and removals; the disk is still
    not touched.
    """

    def __init__(self, base: WritableRoot) -> None:  # shares the descriptor; never closes it
        self.fd, self.path = base.fd, base.path
        self.written: dict[str, Action] = {}
        self.removed: set[str] = set()

    def close(self) -> None:
        """The descriptor belongs to the root this view was made from."""

    def record(self, action: Action) -> None:
        """Take a planned action into account for the reads that follow."""
        path = normalize(action.path)
        if action.kind == "remove":
            self.removed.add(path)
            self.written = {p: a for p, a in self.written.items() if not under(p, {path})}
        else:
            self.written[path] = action

    def target(self, writes: dict[str, str] | None = None) -> RootDirTarget:
        """The facts' view of the root with what is planned so far, then ``writes``."""
        planned = {p: a.content or "" for p, a in self.written.items()}
        return OverlayTarget(self.path, {**planned, **(writes or {})}, self.removed)

    def entry(self, path: str) -> Entry | None:
        """What will be at ``path``."""
        path = normalize(path)
        if path in self.written:
            action = self.written[path]
            raw = (action.content or "").encode("utf-8", errors="surrogateescape")
            return Entry("file", len(raw), action.mode if action.mode is not None else 0o644)
        return None if under(path, self.removed) else super().entry(path)

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        """What ``path`` will hold."""
        path = normalize(path)
        if path in self.written:
            return (self.written[path].content or "")[:limit]
        return None if under(path, self.removed) else super().read_text(path, limit)


def make_plan(root: WritableRoot, chosen: list[Operation], options: Options = NO_OPTIONS
              ) -> Plan:
    """Ask every chosen operation what it would do, each seeing what the ones before it
    planned (:class:`PlannedRoot`); nothing is changed."""
    plan = Plan(chosen, [])
    view = PlannedRoot(root)
    for op in chosen:
        for step in op.plan(view, options):
            if isinstance(step, Note):
                plan.warnings.append(step)
            else:
                plan.actions.append(step)
                view.record(step)
    return plan


def apply(root: WritableRoot, plan: Plan) -> list[Action]:
    """Carry out the plan's actions in order; the actions done (a removal of something a
    previous action already removed is skipped)."""
    done = []
    for action in plan.actions:
        if action.kind == "remove":
            if root.remove(action.path):
                done.append(action)
        else:
            assert action.content is not None
            root.replace(action.path, action.content, action.mode)
            done.append(action)
    return done
