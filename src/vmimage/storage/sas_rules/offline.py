"""SAS rules that read the URI alone: permissions, start, expiry, blob name, scheme, one URI
per VHD."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule
from vmimage.storage.business_days import business_days
from vmimage.storage.sas import SasRule, iso
from vmimage.storage.sas_rules.context import SasContext

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?Z$")
_BAD_NAME = re.compile(r"[\s%\"]")


class _BadTime(Exception):
    """The URI's time field is missing or malformed: the rule fails with this outcome."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


@rule(subject="sas-uri", os="any", id="SAS-URI-PERMISSIONS",
      title="The SAS grants read and list only", severity=Severity.FAIL, covers=("SAS-PERM",),
      remediation="Make it again: vmimage sas create BLOB_URL (sp=rl on the container, or "
                  "--blob-scope for sp=r).")
def permissions(ctx: SasContext) -> Outcome:
    """The Marketplace only reads; a token that can write or delete must not leave the house."""
    f = ctx.uri.fields
    sp, sr = f.get("sp"), f.get("sr")
    if "sig" not in f:
        return violated(ctx.say("the URI carries no SAS (no sig=)"),
                        ctx.ev(required="a SAS query: sv, sr, sp, st, se, sig"))
    if sp is None:
        if "si" in f:
            return skipped(ctx.say(f"permissions come from the stored access policy "
                                   f"{f['si']!r}; only the live test can tell"))
        return violated(ctx.say("the SAS states no permissions (sp)"), ctx.ev(required="sp=rl"))
    granted = set(sp)
    if sr == "b":
        wanted, required = {"r"}, "sp=r (blob SAS)"
    elif sr == "c":
        wanted, required = {"r", "l"}, "sp=rl (container SAS)"
    elif sr is None and "ss" in f:
        wanted, required = {"r", "l"}, "sp=rl"
    else:
        return violated(ctx.say(f"resource type sr={sr} is neither a blob (b) nor a container "
                                "(c) SAS"), ctx.ev(f"sr={sr}", "sr=c or sr=b"))
    ev = ctx.ev(f"sp={sp}", required)
    dangerous = sorted(granted & set("wdacxyti"))
    if dangerous:
        return violated(ctx.say(f"grants {''.join(dangerous)} (write, delete or other "
                                "changes): the SAS must only read and list"), ev)
    if granted != wanted:
        return violated(ctx.say(f"permissions sp={sp} are not exactly {required}"), ev)
    if sr is None:
        return violated(ctx.say("an account SAS with sp=rl reads every container of the "
                                "account: prefer a container or blob SAS"), ev,
                        severity=Severity.WARNING)
    return passed(ctx.say(f"sp={sp}, sr={sr}"), ev)


def _time(ctx: SasContext, name: str) -> datetime:
    value = ctx.uri.fields.get(name)
    if value is None:
        raise _BadTime(violated(ctx.say(f"the SAS has no {name} time"), ctx.ev(
            required=f"{name}=<full ISO date-time, e.g. 2017-11-02T00:00:00Z>")))
    if not _ISO.match(value):
        raise _BadTime(violated(ctx.say(f"{name}={value} is not a full ISO date-time "
                                        "(shortened forms fail)"),
                                ctx.ev(value, "YYYY-MM-DDThh:mm:ssZ")))
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _BadTime(violated(ctx.say(f"{name}={value} is not a valid date-time"),
                                ctx.ev(value))) from None


@rule(subject="sas-uri", os="any", id="SAS-URI-START",
      title="The SAS starts early enough against clock skew", severity=Severity.FAIL,
      covers=("SAS-START",),
      remediation="Make it again with vmimage sas create, which sets the profile's start time.")
def start(ctx: SasContext) -> Outcome:
    """A token that starts 'now' is refused by a service whose clock runs a little behind."""
    try:
        begins = _time(ctx, "st")
    except _BadTime as bad:
        return bad.outcome
    before = SasRule.of(ctx.profile).start_before
    latest = ctx.now - before
    ev = ctx.ev(iso(begins), f"st <= {iso(latest)} ({span(before)} before now, "
                             f"{ctx.profile.name})")
    if begins > ctx.now:
        return violated(ctx.say(f"not valid yet: starts {iso(begins)}, "
                                f"{span(begins - ctx.now)} from now"), ev)
    if begins > latest:
        return violated(ctx.say(f"starts only {span(ctx.now - begins)} before now; clock "
                                "skew may refuse it"), ev)
    return passed(ctx.say(f"starts {span(ctx.now - begins)} before now"), ev)


@rule(subject="sas-uri", os="any", id="SAS-URI-EXPIRY", title="The SAS stays valid long enough",
      severity=Severity.FAIL, covers=("SAS-DURATION",),
      remediation="Make it again with vmimage sas create (or --days N for longer).")
def expiry(ctx: SasContext) -> Outcome:
    """Certification takes days: a token that expires first fails the submission."""
    try:
        ends = _time(ctx, "se")
    except _BadTime as bad:
        return bad.outcome
    sas_rule = SasRule.of(ctx.profile)
    if ends <= ctx.now:
        return violated(ctx.say(f"expired {iso(ends)}"),
                        ctx.ev(iso(ends), f"at least {sas_rule.describe} from now"))
    if sas_rule.min_business_days is not None:
        left = business_days(ctx.now, ends)
        ok = left >= sas_rule.min_business_days
        text = f"{left:.2f} business days left (weekends skipped)"
    else:
        left = (ends - ctx.now) / timedelta(days=1)
        ok = left >= (sas_rule.min_days or 0)
        text = f"{left:.2f} days left"
    ev = ctx.ev(iso(ends), f"at least {sas_rule.describe} from now ({ctx.profile.name})")
    return passed(ctx.say(text), ev) if ok else violated(ctx.say(f"only {text}: too short"), ev)


@rule(subject="sas-uri", os="any", id="SAS-URI-BLOB-NAME", title="The URI names the .vhd blob",
      severity=Severity.FAIL, covers=("SAS-BLOB",),
      remediation="Name the blob NAME.vhd with no spaces, % or \" and append its path to the "
                  "SAS.")
def blob_name(ctx: SasContext) -> Outcome:
    """A container URI or an odd name is refused by the ingestion, late."""
    blob = ctx.uri.blob
    required = "NAME.vhd without spaces, % or \""
    if not blob:
        return violated(ctx.say("the URI names no blob: append the VHD's path to the container "
                                "URL before the ?"), ctx.ev(required=required))
    leaf = blob.rsplit("/", 1)[-1]
    bad = sorted(set(_BAD_NAME.findall(blob)))
    if not leaf.lower().endswith(".vhd"):
        return violated(ctx.say(f"the blob name {blob!r} does not end in .vhd"),
                        ctx.ev(blob, required))
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return violated(ctx.say(f"the blob name {blob!r} holds {shown}"), ctx.ev(blob, required))
    return passed(ctx.say(f"names {blob}"), ctx.ev(blob, required))


@rule(subject="sas-uri", os="any", id="SAS-URI-SCHEME",
      title="The URI's scheme follows the profile", severity=Severity.FAIL,
      covers=("SAS-SCHEME",),
      remediation="Use the https URL (the current rules require it).")
def scheme(ctx: SasContext) -> Outcome:
    """Today https is required; the 2015 steps said the URL should not start with https (a
    Storage Explorer setting of that time), which the 2015 profile makes a warning."""
    value = ctx.uri.scheme
    if ctx.profile.flag("require_https"):
        if value == "https":
            return passed(ctx.say("https"), ctx.ev(value, "https"))
        return violated(ctx.say(f"{value}: the current rules require https"),
                        ctx.ev(value, "https"))
    ev = ctx.ev(value, "http (2015 guide)")
    if value == "https":
        return violated(ctx.say("https: the 2015 steps say the URL should not start with https "
                                "(a Storage Explorer setting of that time)"), ev)
    return passed(ctx.say(f"{value}, as the 2015 steps made it"), ev)


@rule(subject="sas-uri", os="any", id="SAS-URI-DISTINCT", title="Every VHD has its own SAS URI",
      severity=Severity.FAIL, covers=("SAS-EACH",),
      remediation="Give each VHD (OS disk and each data disk) its own URI.")
def distinct(ctx: SasContext) -> Outcome:
    """Two disks behind one URI means one of them is never ingested."""
    twin = next((u for u in ctx.earlier if u.identity == ctx.uri.identity), None)
    if twin is not None:
        return violated(ctx.say(f"names the same VHD as an earlier URI ({twin.shown})"),
                        ctx.ev(), Evidence(path=twin.shown))
    others = len(ctx.earlier)
    return passed(ctx.say(f"no earlier URI of {others} names this VHD" if others
                          else "the first URI given"), ctx.ev())


def span(delta: timedelta) -> str:
    """``15 min``, ``1 day 2 h``..."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"
