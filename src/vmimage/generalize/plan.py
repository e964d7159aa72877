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

from vmimage.generalize.rootfs import WritableRoot


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


def make_plan(root: WritableRoot, chosen: list[Operation], options: Options = NO_OPTIONS
              ) -> Plan:
    """Ask every chosen operation what it would do; nothing is changed."""
    plan = Plan(chosen, [])
    for op in chosen:
        for step in op.plan(root, options):
            if isinstance(step, Note):
                plan.warnings.append(step)
            else:
                plan.actions.append(step)
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
