"""First-boot configuration (WIN-FIRSTBOOT): scheduled tasks that run at startup delete
themselves, and rely on no drive but C: (the OS disk) and D: (the temporary disk)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from vmimage.checks.context import CheckContext
from vmimage.checks.windows.common import decode_text
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule
from vmimage.targets.base import Target, UnreadableError

TASKS = "/Windows/System32/Tasks"
#: Windows' own tasks live here; they are the system's, not the publisher's first boot.
SYSTEM_FOLDERS = frozenset({"microsoft"})
TASK_MAX = 1 << 20
TASKS_MAX = 10_000
DEPTH_MAX = 16
ALLOWED_DRIVES = frozenset({"C", "D"})
_NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_DRIVE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]):[\\/]")
_DELETES = re.compile(r"schtasks(?:\.exe)?\"?\s.*/delete|unregister-scheduledtask",
                      re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Task:
    """What the rule needs of one task file."""

    path: str
    name: str
    at_startup: bool
    actions: tuple[str, ...]  # "command arguments" of each Exec action, and working dirs
    expires: bool  # Settings DeleteExpiredTaskAfter with an EndBoundary: deleted by Windows


def _walk(target: Target, folder: str, depth: int, out: list[str]) -> None:
    for name in target.iterdir(folder):
        if len(out) >= TASKS_MAX:
            return
        path = f"{folder}/{name}"
        if depth == 0 and name.casefold() in SYSTEM_FOLDERS:
            continue
        info = target.stat(path, follow=False)
        if info.is_dir and depth < DEPTH_MAX:
            _walk(target, path, depth + 1, out)
        elif info.is_file:
            out.append(path)


def task_files(target: Target) -> list[str]:
    """The publisher's task files (``Tasks\\Microsoft`` left out), at most TASKS_MAX."""
    out: list[str] = []
    try:
        _walk(target, TASKS, 0, out)
    except UnreadableError:
        raise
    except FileNotFoundError:
        return []
    return out


def _text(node: ET.Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def parse_task(path: str, data: bytes) -> Task | None:
    """A Task Scheduler XML file, or None when it is no such XML (a DTD is refused: a task
    file never has one, and entities are how XML bombs work)."""
    text = _DECLARATION.sub("", decode_text(data), count=1)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError):  # malformed, or not characters XML allows
        return None
    if root.tag != f"{_NS}Task":
        return None
    name = _text(root.find(f"{_NS}RegistrationInfo/{_NS}URI")).lstrip("\\") or \
        path.removeprefix(TASKS + "/").replace("/", "\\")
    triggers = root.find(f"{_NS}Triggers")
    startup = triggers is not None and triggers.find(f"{_NS}BootTrigger") is not None
    actions = []
    for exe in root.iterfind(f"{_NS}Actions/{_NS}Exec"):
        actions.append(" ".join(filter(None, (_text(exe.find(f"{_NS}Command")),
                                               _text(exe.find(f"{_NS}Arguments")),
                                               _text(exe.find(f"{_NS}WorkingDirectory"))))))
    expires = (root.find(f"{_NS}Settings/{_NS}DeleteExpiredTaskAfter") is not None
               and root.find(f".//{_NS}EndBoundary") is not None)
    return Task(path, name, startup, tuple(actions), expires)


def deletes_itself(task: Task) -> bool:
    """An action runs ``schtasks /Delete`` or ``Unregister-ScheduledTask`` naming the task,
    or Windows deletes it when it expires."""
    leaf = task.name.rsplit("\\", 1)[-1].casefold()
    return task.expires or any(_DELETES.search(a) and leaf in a.casefold()
                               for a in task.actions)


@rule(id="WINDOWS-FIRSTBOOT-TASKS",
       title="Startup tasks delete themselves and use only drives C: and D:",
       severity=Severity.FAIL, os="windows", covers=("WIN-FIRSTBOOT",),
       remediation="Make each task that runs at startup delete itself when it succeeds "
                   "(a last action `schtasks /Delete /TN NAME /F`), and keep its files on C: "
                   "or D:, the only drives every Azure VM has.",
       needs=("filesystem",))
def firstboot_tasks(ctx: CheckContext) -> Iterator[Outcome]:
    """Every task file under ``Windows\\System32\\Tasks`` (Windows' own ``Microsoft`` folder
    left out) with a boot trigger: one of its actions deletes it, and no action names a
    drive letter other than C: or D:."""
    assert ctx.target is not None
    paths = task_files(ctx.target)
    startup = 0
    for path in paths:
        task = parse_task(path, ctx.target.read_bytes(path, max_size=TASK_MAX))
        if task is None:
            yield skipped(f"{path} is not a Task Scheduler XML file",
                          Evidence(path=path, seen="unparsable"))
            continue
        if not task.at_startup:
            continue
        startup += 1
        if not deletes_itself(task):
            yield violated(f"startup task {task.name} does not delete itself",
                           Evidence(path=path, seen="; ".join(task.actions) or "(no action)",
                                    required=f"schtasks /Delete /TN {task.name} /F"))
        drives = sorted({d.upper() for a in task.actions for d in _DRIVE.findall(a)}
                        - ALLOWED_DRIVES)
        if drives:
            yield violated(f"startup task {task.name} uses drive(s) "
                           f"{', '.join(d + ':' for d in drives)}",
                           Evidence(path=path, seen="; ".join(task.actions),
                                    required="only C: and D:"))
    yield passed(f"{startup} startup task(s) of {len(paths)} delete themselves and use only "
                 "C: and D:", Evidence(path=TASKS, seen=", ".join(paths) or "(no task)"))
