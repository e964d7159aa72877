"""Security updates (WIN-UPDATES): the WannaCry fix in the SMB server drivers, and Windows
Update's own record of its last install and of a restart it still needs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from vmimage.checks.context import CheckContext
from vmimage.checks.windows.common import SOFTWARE_PATH, software_hive
from vmimage.checks.windows.system import describe
from vmimage.facts.windows.pe import read_version_info
from vmimage.facts.windows.system import AUTO_UPDATE, CBS, product, update_state
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError

Version = tuple[int, int, int, int]
DRIVERS = ("/Windows/System32/drivers/srv.sys", "/Windows/System32/drivers/srv2.sys")
#: MS17-010 (WannaCry): the first srv.sys/srv2.sys versions with the fix, by build (research
#: §2.2). Builds from 2019 (17763) on were released with it.
WANNACRY_MINIMUM: dict[int, Version] = {
    7601: (6, 1, 7601, 23689),  # Windows Server 2008 R2 SP1
    9200: (6, 2, 9200, 22099),  # Windows Server 2012
    9600: (6, 3, 9600, 18604),  # Windows Server 2012 R2
    14393: (10, 0, 14393, 953),  # Windows Server 2016
}
FIXED_FROM_BUILD = 17763


def _dotted(version: Version) -> str:
    return ".".join(map(str, version))


@rule(id="WINDOWS-WANNACRY", title="The SMB server drivers carry the WannaCry fix (MS17-010)",
       severity=Severity.FAIL, os="windows", covers=("WIN-UPDATES",),
       remediation="Install the latest cumulative update (or at least MS17-010) with Windows "
                   "Update, restart, then sysprep again.",
       needs=("filesystem",))
def wannacry(ctx: CheckContext) -> Iterator[Outcome]:
    """The file versions of ``drivers\\srv.sys`` and ``srv2.sys`` against the minimum of the
    build (``CurrentBuild``): 2008 R2 6.1.7601.23689, 2012 6.2.9200.22099, 2012 R2
    6.3.9600.18604, 2016 10.0.14393.953; 2019 and later need none. An absent driver (SMBv1
    removed) is not vulnerable."""
    assert ctx.target is not None
    prod = product(software_hive(ctx))
    build_ev = Evidence(path=f"{SOFTWARE_PATH}: Microsoft\\Windows NT\\CurrentVersion",
                        seen=describe(prod))
    if prod.build is not None and prod.build >= FIXED_FROM_BUILD:
        yield passed(f"build {prod.build} was released with the MS17-010 fix", build_ev)
        return
    minimum = WANNACRY_MINIMUM.get(prod.build or 0)
    if minimum is None:
        yield skipped(f"no MS17-010 minimum is known for build {prod.build or '(absent)'}",
                      build_ev)
        return
    seen = 0
    for path in DRIVERS:
        try:
            info = read_version_info(ctx.target, path)
        except UnreadableError:
            raise
        except OSError:
            continue  # not installed: nothing to exploit
        seen += 1
        ev = Evidence(path=path, seen=_dotted(info.file_version) if info else "(no version)",
                      required=f">= {_dotted(minimum)}")
        if info is None:
            yield skipped(f"{path} has no version resource", ev)
        elif info.file_version < minimum:
            yield violated(f"{path.rsplit('/', 1)[-1]} {_dotted(info.file_version)} is older "
                           f"than the MS17-010 fix {_dotted(minimum)}", ev)
        else:
            yield passed(f"{path.rsplit('/', 1)[-1]} {_dotted(info.file_version)} has the fix",
                         ev)
    if not seen:
        yield passed("neither srv.sys nor srv2.sys is installed", build_ev)


def now() -> datetime:
    """The time updates are judged against (a function, so tests can fix it)."""
    return datetime.now(UTC)


def _parse(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


@rule(id="WINDOWS-UPDATES-RECENT", title="Windows Update installed updates recently",
       severity=Severity.WARNING, os="windows", covers=("WIN-UPDATES",),
       remediation="Run Windows Update until it offers nothing more, restart until no restart "
                   "is pending, then sysprep and capture.",
       needs=("filesystem",))
def updates_recent(ctx: CheckContext) -> Iterator[Outcome]:
    """``Auto Update\\Results\\Install LastSuccessTime`` no older than the profile's
    ``windows_update_max_age_days``, and no ``RebootRequired`` or ``RebootPending`` key.
    Without a LastSuccessTime (newer Windows keep it elsewhere) the recency is skipped with
    that reason; the patch level itself is not known offline."""
    state = update_state(software_hive(ctx))
    days = ctx.profile.number("windows_update_max_age_days")
    path = f"{SOFTWARE_PATH}: {AUTO_UPDATE}\\Results\\Install LastSuccessTime"
    ev = Evidence(path=path, seen=state.last_success or "(absent)",
                  required=f"within {days} days")
    when = _parse(state.last_success) if state.last_success else None
    if state.last_success is None:
        yield skipped("Windows Update recorded no last successful install: its recency "
                      "cannot be told offline", ev)
    elif when is None:
        yield skipped(f"LastSuccessTime {state.last_success!r} is not a time", ev)
    else:
        age = (now() - when).days
        if age > days:
            yield violated(f"Windows Update last installed updates {age} days ago "
                           f"({state.last_success} UTC)", ev)
        else:
            yield passed(f"Windows Update last installed updates on {state.last_success} UTC",
                         ev)
    for flag, key in ((state.reboot_required, f"{AUTO_UPDATE}\\RebootRequired"),
                      (state.reboot_pending, f"{CBS}\\RebootPending")):
        if flag:
            yield violated("a restart is pending to finish installing updates",
                           Evidence(path=f"{SOFTWARE_PATH}: {key}", seen="present",
                                    required="absent"))
