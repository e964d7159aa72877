"""The image is generalized: ``sysprep /generalize /oobe`` ran to its end (WIN-SYSPREP)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from vmimage.checks.context import CheckContext
from vmimage.checks.windows.common import SOFTWARE_PATH, decode_text, software_hive
from vmimage.facts.windows.system import image_state
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError

GENERALIZED = "IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE"
STATE_INI = "/Windows/Setup/State/State.ini"
SETUPERR_LOGS = ("/Windows/System32/Sysprep/Panther/setuperr.log",
                 "/Windows/Panther/setuperr.log")
_LOG_MAX = 4 << 20
_STATE_RE = re.compile(r"^\s*ImageState\s*=\s*(\S+)", re.IGNORECASE | re.MULTILINE)
#: At most this many error lines of a log become evidence.
_LINES_SHOWN = 5


def _read(ctx: CheckContext, path: str) -> str | None:
    assert ctx.target is not None
    try:
        return decode_text(ctx.target.read_bytes(path, max_size=_LOG_MAX))
    except UnreadableError:
        raise
    except OSError:
        return None


@rule(id="WINDOWS-GENERALIZED", title="The image is generalized with sysprep",
       severity=Severity.FAIL, os="windows", covers=("WIN-SYSPREP",),
       remediation="Run `C:\\Windows\\System32\\Sysprep\\sysprep.exe /generalize /oobe "
                   "/shutdown` as the last step and capture the disk without booting it again; "
                   "fix what setuperr.log reports first.",
       needs=("filesystem",))
def generalized(ctx: CheckContext) -> Iterator[Outcome]:
    """``Setup\\State ImageState`` in the SOFTWARE hive and ``ImageState`` in
    ``Windows\\Setup\\State\\State.ini`` must both say IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE
    (a State.ini that is absent is noted, not judged), and sysprep's ``setuperr.log`` files
    must hold no error line."""
    state = image_state(software_hive(ctx))
    reg = Evidence(path=f"{SOFTWARE_PATH}: Microsoft\\Windows\\CurrentVersion\\Setup\\State "
                        "ImageState", seen=state or "(absent)", required=GENERALIZED)
    bad = False
    if state != GENERALIZED:
        bad = True
        yield violated(f"ImageState is {state or 'absent'}: the image is not generalized", reg)
    ini = _read(ctx, STATE_INI)
    found = _STATE_RE.search(ini) if ini is not None else None
    ini_state = found.group(1) if found else None
    ini_ev = Evidence(path=STATE_INI, seen="(absent)" if ini is None else ini_state or
                      "(no ImageState)", required=GENERALIZED)
    if ini is not None and ini_state != GENERALIZED:
        bad = True
        yield violated(f"State.ini says {ini_state or 'no ImageState'}", ini_ev)
    logs = []
    for path in SETUPERR_LOGS:
        text = _read(ctx, path)
        lines = [(n, s.strip()) for n, s in enumerate((text or "").splitlines(), 1) if s.strip()]
        logs.append(Evidence(path=path, seen="(absent)" if text is None else
                             f"{len(lines)} error line(s)", required="no error line"))
        for number, line in lines[:_LINES_SHOWN]:
            bad = True
            yield violated(f"sysprep logged errors in {path}",
                           Evidence(path=path, line=number, seen=line[:300],
                                    required="no error line"))
    if not bad:
        yield passed("generalized: ImageState is IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE and "
                     "sysprep logged no error", reg, ini_ev, *logs)
