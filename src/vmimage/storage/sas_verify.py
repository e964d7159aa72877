"""``vmimage sas verify``: every SAS rule of the guide, one finding each, with its requirement.

The offline rules read the URI itself: permissions (SAS-PERM), start (SAS-START), expiry
(SAS-DURATION, business days counted from now, weekends skipped), the blob's name (SAS-BLOB)
and the scheme (SAS-SCHEME, a warning in 2015, required in the current profile). The online
rules (SAS-WORKS) use nothing but the URI, as the Marketplace will: the blob exists and the
SAS opens it, it is a page blob, not leased, its length is the footer's virtual size + 512 and
its last 512 bytes, read with an explicit ``Range: bytes=a-b`` (never a suffix range, which
crashes Azurite), are a valid fixed VHD footer. Given several URIs, SAS-EACH checks that each
names its own VHD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from vmimage.disk import vhd
from vmimage.findings import Evidence, Finding, Status
from vmimage.profiles import Profile
from vmimage.storage import retry
from vmimage.storage.blob_url import BlobUrl, is_path_style, register_sas
from vmimage.storage.business_days import business_days
from vmimage.storage.errors import describe, error_code
from vmimage.storage.redact import redact
from vmimage.storage.sas import SasRule, iso
from vmimage.units import MiB

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?Z$")
_BAD_NAME = re.compile(r"[\s%\"]")


@dataclass(frozen=True)
class Rule:
    """One SAS rule: its check ID, the requirement it covers, its title and its fix."""

    id: str
    covers: str
    title: str
    remediation: str


RULES = {r.id: r for r in (
    Rule("SAS-URI-PERMISSIONS", "SAS-PERM", "The SAS grants read and list only",
         "Make it again: vmimage sas create BLOB_URL (sp=rl on the container, or "
         "--blob-scope for sp=r)."),
    Rule("SAS-URI-START", "SAS-START", "The SAS starts early enough against clock skew",
         "Make it again with vmimage sas create, which sets the profile's start time."),
    Rule("SAS-URI-EXPIRY", "SAS-DURATION", "The SAS stays valid long enough",
         "Make it again with vmimage sas create (or --days N for longer)."),
    Rule("SAS-URI-BLOB-NAME", "SAS-BLOB", "The URI names the .vhd blob",
         "Name the blob NAME.vhd with no spaces, % or \" and append its path to the SAS."),
    Rule("SAS-URI-SCHEME", "SAS-SCHEME", "The URI's scheme follows the profile",
         "Use the https URL (the current rules require it)."),
    Rule("SAS-URI-READABLE", "SAS-WORKS", "The SAS opens the blob",
         "Check the blob's path, the SAS's times and signature; upload the VHD first."),
    Rule("SAS-URI-PAGE-BLOB", "SAS-WORKS", "The blob is a page blob",
         "Upload the VHD as a page blob: vmimage upload FILE BLOB_URL."),
    Rule("SAS-URI-NOT-LEASED", "SAS-WORKS", "The blob is not leased",
         "Break the lease (az storage blob lease break) or detach the disk from its VM."),
    Rule("SAS-URI-LENGTH", "SAS-WORKS", "The blob's length is the virtual size + 512",
         "Upload a fixed VHD whose virtual size is a whole MiB: vmimage vhd validate first."),
    Rule("SAS-URI-FOOTER", "SAS-WORKS", "The blob ends in a valid fixed VHD footer",
         "Upload a fixed VHD: vmimage vhd convert IN OUT.vhd, then vmimage upload."),
    Rule("SAS-URI-DISTINCT", "SAS-EACH", "Every VHD has its own SAS URI",
         "Give each VHD (OS disk and each data disk) its own URI."),
)}


@dataclass(frozen=True)
class SasUri:
    """A SAS URI taken apart leniently: verify reports what is wrong instead of refusing."""

    text: str
    scheme: str
    netloc: str
    account: str
    container: str
    blob: str
    fields: dict[str, str]

    @property
    def shown(self) -> str:
        """The URI without its signature."""
        return redact(self.text)


def parse_sas_uri(text: str) -> SasUri:
    """Take ``text`` apart; missing parts come back empty."""
    text = text.strip()
    parts = urlsplit(text)
    register_sas(parts.query)
    fields = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    segments = parts.path.lstrip("/").split("/") if parts.path.strip("/") else []
    host = parts.hostname or ""
    if is_path_style(host) and segments:
        account, segments = segments[0], segments[1:]
    else:
        account = host.split(".")[0]
    container = segments[0] if segments else ""
    blob = unquote("/".join(segments[1:])) if len(segments) > 1 else ""
    return SasUri(text, parts.scheme.lower(), parts.netloc, account, container, blob, fields)


class _Report:
    """Findings for one URI."""

    def __init__(self, uri: SasUri) -> None:
        self.uri = uri
        self.findings: list[Finding] = []

    def add(self, rule_id: str, status: Status, message: str, seen: str | None = None,
            required: str | None = None) -> None:
        rule = RULES[rule_id]
        name = self.uri.blob or self.uri.container or self.uri.netloc
        self.findings.append(Finding(
            rule.id, rule.title, status, redact(f"{name}: {message}"), (rule.covers,),
            rule.remediation if status is not Status.PASS else "",
            (Evidence(path=self.uri.shown, seen=None if seen is None else redact(seen),
                      required=required),)))


def verify_sas(uris: list[str], profile: Profile, online: bool = True,
               now: datetime | None = None, timeout: float = 30.0) -> list[Finding]:
    """Findings for every rule on every URI, then SAS-EACH across them."""
    moment = now or datetime.now(UTC)
    findings: list[Finding] = []
    parsed = [parse_sas_uri(u) for u in uris]
    for uri in parsed:
        report = _Report(uri)
        _permissions(report)
        _start(report, profile, moment)
        _expiry(report, profile, moment)
        _name(report)
        _scheme(report, profile)
        if online:
            _works(report, timeout)
        else:
            for rule_id in ("SAS-URI-READABLE", "SAS-URI-PAGE-BLOB", "SAS-URI-NOT-LEASED",
                            "SAS-URI-LENGTH", "SAS-URI-FOOTER"):
                report.add(rule_id, Status.SKIP, "not tried (--offline)")
        findings += report.findings
    if len(parsed) > 1:
        findings += _distinct(parsed)
    return findings


def _permissions(r: _Report) -> None:
    f = r.uri.fields
    sp, sr = f.get("sp"), f.get("sr")
    if "sig" not in f:
        r.add("SAS-URI-PERMISSIONS", Status.FAIL, "the URI carries no SAS (no sig=)",
              required="a SAS query: sv, sr, sp, st, se, sig")
        return
    if sp is None:
        if "si" in f:
            r.add("SAS-URI-PERMISSIONS", Status.SKIP, f"permissions come from the stored access "
                  f"policy {f['si']!r}; only the live test can tell")
        else:
            r.add("SAS-URI-PERMISSIONS", Status.FAIL, "the SAS states no permissions (sp)",
                  required="sp=rl")
        return
    granted = set(sp)
    if sr == "b":
        wanted, required = {"r"}, "sp=r (blob SAS)"
    elif sr == "c":
        wanted, required = {"r", "l"}, "sp=rl (container SAS)"
    elif sr is None and "ss" in f:
        wanted, required = {"r", "l"}, "sp=rl"
    else:
        r.add("SAS-URI-PERMISSIONS", Status.FAIL, f"resource type sr={sr} is neither a blob (b) "
              "nor a container (c) SAS", seen=f"sr={sr}", required="sr=c or sr=b")
        return
    dangerous = sorted(granted & set("wdacxyti"))
    if dangerous:
        r.add("SAS-URI-PERMISSIONS", Status.FAIL, f"grants {''.join(dangerous)} (write, delete "
              f"or other changes): the SAS must only read and list", seen=f"sp={sp}",
              required=required)
    elif granted != wanted:
        r.add("SAS-URI-PERMISSIONS", Status.FAIL, f"permissions sp={sp} are not exactly "
              f"{required}", seen=f"sp={sp}", required=required)
    elif sr is None:
        r.add("SAS-URI-PERMISSIONS", Status.WARNING, "an account SAS with sp=rl reads every "
              "container of the account: prefer a container or blob SAS", seen=f"sp={sp}",
              required=required)
    else:
        r.add("SAS-URI-PERMISSIONS", Status.PASS, f"sp={sp}, sr={sr}", seen=f"sp={sp}",
              required=required)


def _time(r: _Report, rule_id: str, name: str) -> datetime | None:
    value = r.uri.fields.get(name)
    if value is None:
        r.add(rule_id, Status.FAIL, f"the SAS has no {name} time", required=f"{name}=<full "
              "ISO date-time, e.g. 2017-11-02T00:00:00Z>")
        return None
    if not _ISO.match(value):
        r.add(rule_id, Status.FAIL, f"{name}={value} is not a full ISO date-time (shortened "
              "forms fail)", seen=value, required="YYYY-MM-DDThh:mm:ssZ")
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        r.add(rule_id, Status.FAIL, f"{name}={value} is not a valid date-time", seen=value)
        return None


def _start(r: _Report, profile: Profile, now: datetime) -> None:
    start = _time(r, "SAS-URI-START", "st")
    if start is None:
        return
    before = SasRule.of(profile).start_before
    latest = now - before
    required = f"st <= {iso(latest)} ({_span(before)} before now, {profile.name})"
    if start > now:
        r.add("SAS-URI-START", Status.FAIL, f"not valid yet: starts {iso(start)}, "
              f"{_span(start - now)} from now", seen=iso(start), required=required)
    elif start > latest:
        r.add("SAS-URI-START", Status.FAIL, f"starts only {_span(now - start)} before now; "
              f"clock skew may refuse it", seen=iso(start), required=required)
    else:
        r.add("SAS-URI-START", Status.PASS, f"starts {_span(now - start)} before now",
              seen=iso(start), required=required)


def _expiry(r: _Report, profile: Profile, now: datetime) -> None:
    expiry = _time(r, "SAS-URI-EXPIRY", "se")
    if expiry is None:
        return
    rule = SasRule.of(profile)
    if expiry <= now:
        r.add("SAS-URI-EXPIRY", Status.FAIL, f"expired {iso(expiry)}", seen=iso(expiry),
              required=f"at least {rule.describe} from now")
        return
    if rule.min_business_days is not None:
        left = business_days(now, expiry)
        ok = left >= rule.min_business_days
        text = f"{left:.2f} business days left (weekends skipped)"
    else:
        left = (expiry - now) / timedelta(days=1)
        ok = left >= (rule.min_days or 0)
        text = f"{left:.2f} days left"
    r.add("SAS-URI-EXPIRY", Status.PASS if ok else Status.FAIL,
          text if ok else f"only {text}: too short", seen=iso(expiry),
          required=f"at least {rule.describe} from now ({profile.name})")


def _name(r: _Report) -> None:
    blob = r.uri.blob
    required = "NAME.vhd without spaces, % or \""
    if not blob:
        r.add("SAS-URI-BLOB-NAME", Status.FAIL, "the URI names no blob: append the VHD's path "
              "to the container URL before the ?", required=required)
        return
    leaf = blob.rsplit("/", 1)[-1]
    bad = sorted(set(_BAD_NAME.findall(blob)))
    if not leaf.lower().endswith(".vhd"):
        r.add("SAS-URI-BLOB-NAME", Status.FAIL, f"the blob name {blob!r} does not end in .vhd",
              seen=blob, required=required)
    elif bad:
        shown = ", ".join(repr(c) for c in bad)
        r.add("SAS-URI-BLOB-NAME", Status.FAIL, f"the blob name {blob!r} holds {shown}",
              seen=blob, required=required)
    else:
        r.add("SAS-URI-BLOB-NAME", Status.PASS, f"names {blob}", seen=blob, required=required)


def _scheme(r: _Report, profile: Profile) -> None:
    scheme = r.uri.scheme
    if profile.flag("require_https"):
        status = Status.PASS if scheme == "https" else Status.FAIL
        message = ("https" if status is Status.PASS else
                   f"{scheme}: the current rules require https")
        r.add("SAS-URI-SCHEME", status, message, seen=scheme, required="https")
    elif scheme == "https":
        r.add("SAS-URI-SCHEME", Status.WARNING, "https: the 2015 steps say the URL should not "
              "start with https (a Storage Explorer setting of that time)", seen=scheme,
              required="http (2015 guide)")
    else:
        r.add("SAS-URI-SCHEME", Status.PASS, f"{scheme}, as the 2015 steps made it",
              seen=scheme, required="http (2015 guide)")


def _works(r: _Report, timeout: float) -> None:
    """Open the blob with the URI alone: properties, then the footer by an explicit range."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobClient

    later = ("SAS-URI-PAGE-BLOB", "SAS-URI-NOT-LEASED", "SAS-URI-LENGTH", "SAS-URI-FOOTER")
    u = r.uri
    if u.scheme not in ("http", "https") or not u.container or not u.blob or "sig" not in u.fields:
        r.add("SAS-URI-READABLE", Status.FAIL, "cannot be opened: not an http(s) SAS URI "
              "naming a blob")
        _skip(r, later, "the blob could not be opened")
        return
    url = BlobUrl(u.scheme, u.netloc, u.account, u.container, u.blob,
                  is_path_style(urlsplit(u.text).hostname or ""), urlsplit(u.text).query)
    client = BlobClient(url.account_url, url.container, url.blob, credential=url.sas,
                        retry_total=0, connection_timeout=timeout, read_timeout=timeout)
    policy = retry.RetryPolicy(attempts=3)
    try:
        props = retry.call(client.get_blob_properties, policy)
    except ResourceNotFoundError as exc:
        code = error_code(exc) or "BlobNotFound"
        r.add("SAS-URI-READABLE", Status.FAIL, f"the blob does not exist ({code})", seen=code)
        _skip(r, later, "the blob could not be opened")
        return
    except Exception as exc:
        r.add("SAS-URI-READABLE", Status.FAIL, f"the SAS does not open the blob: "
              f"{describe(exc)}", seen=error_code(exc))
        _skip(r, later, "the blob could not be opened")
        return
    size = int(props.size)
    r.add("SAS-URI-READABLE", Status.PASS, f"the SAS opens the blob ({size} bytes)")
    kind = str(getattr(props.blob_type, "value", props.blob_type))
    r.add("SAS-URI-PAGE-BLOB", Status.PASS if kind == "PageBlob" else Status.FAIL,
          "page blob" if kind == "PageBlob" else f"a {kind}: Azure reports 'Invalid blob type'",
          seen=kind, required="PageBlob")
    lease = getattr(props.lease, "state", None) or "available"
    r.add("SAS-URI-NOT-LEASED", Status.FAIL if lease == "leased" else Status.PASS,
          f"lease state {lease}" + (": the blob is in use" if lease == "leased" else ""),
          seen=lease, required="not leased")
    footer = _footer(r, client, size, policy)
    if footer is None:
        r.add("SAS-URI-LENGTH", Status.SKIP, "no valid footer to take the virtual size from",
              seen=str(size))
        return
    expected = footer.current_size + vhd.FOOTER_SIZE
    if size != expected:
        r.add("SAS-URI-LENGTH", Status.FAIL, f"blob length {size} is not the virtual size "
              f"{footer.current_size} + 512", seen=str(size), required=str(expected))
    elif footer.current_size % MiB:
        r.add("SAS-URI-LENGTH", Status.FAIL, f"virtual size {footer.current_size} is not a "
              "whole number of MiB", seen=str(footer.current_size),
              required="a multiple of 1048576")
    else:
        r.add("SAS-URI-LENGTH", Status.PASS, f"{size} bytes = {footer.current_size // MiB} MiB "
              "+ 512", seen=str(size), required=str(expected))


def _footer(r: _Report, client: BlobClient, size: int, policy: retry.RetryPolicy
            ) -> vhd.Footer | None:
    """Read and judge the last 512 bytes; a FOOTER finding either way."""
    if size < vhd.FOOTER_SIZE:
        r.add("SAS-URI-FOOTER", Status.FAIL, f"the blob is {size} bytes, shorter than a footer",
              seen=str(size))
        return None
    start = size - vhd.FOOTER_SIZE

    def download() -> bytes:
        return bytes(client.download_blob(offset=start, length=vhd.FOOTER_SIZE).readall())
    try:
        raw = retry.call(download, policy)
    except Exception as exc:
        r.add("SAS-URI-FOOTER", Status.FAIL, f"cannot read bytes {start}-{size - 1}: "
              f"{describe(exc)}")
        return None
    footer = vhd.Footer.unpack(raw) if len(raw) == vhd.FOOTER_SIZE else None
    if footer is None:
        r.add("SAS-URI-FOOTER", Status.FAIL, f"read {len(raw)} bytes instead of 512")
        return None
    problems = footer.problems()
    if not problems and footer.disk_type != vhd.DISK_FIXED:
        problems = [f"a {footer.disk_type_name} VHD, not a fixed one"]
    if problems:
        r.add("SAS-URI-FOOTER", Status.FAIL, "; ".join(problems), seen=problems[0],
              required="a valid fixed VHD footer")
        return None
    r.add("SAS-URI-FOOTER", Status.PASS, f"valid fixed VHD footer, virtual size "
          f"{footer.current_size}", seen=f"checksum 0x{footer.checksum:08x}")
    return footer


def _skip(r: _Report, rule_ids: tuple[str, ...], reason: str) -> None:
    for rule_id in rule_ids:
        r.add(rule_id, Status.SKIP, f"cannot decide: {reason}")


def _distinct(uris: list[SasUri]) -> list[Finding]:
    seen: dict[tuple[str, str, str], SasUri] = {}
    findings = []
    rule = RULES["SAS-URI-DISTINCT"]
    for u in uris:
        key = (u.netloc.lower(), u.container, u.blob)
        if key in seen:
            findings.append(Finding(rule.id, rule.title, Status.FAIL,
                                    f"two URIs name the same VHD {u.blob!r}", (rule.covers,),
                                    rule.remediation, (Evidence(path=u.shown),
                                                       Evidence(path=seen[key].shown))))
        seen.setdefault(key, u)
    if not findings:
        findings.append(Finding(rule.id, rule.title, Status.PASS,
                                f"{len(uris)} URIs name {len(seen)} different VHDs",
                                (rule.covers,), ""))
    return findings


def _span(delta: timedelta) -> str:
    """``15 min``, ``1 day 2 h``..."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"
