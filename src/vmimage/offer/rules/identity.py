"""Names: publisher, offer, plan and SKU identifiers, titles and summaries (OFR-*)."""

from __future__ import annotations

from collections.abc import Iterator

from vmimage.findings import Outcome, Severity
from vmimage.offer import ids
from vmimage.offer.keys import Key
from vmimage.offer.keys import dotted as _dotted
from vmimage.offer.rules.context import OfferContext
from vmimage.rules import rule

MAX_TITLE = 50
MAX_SUMMARY = 100
#: Partner Center's plan technical configuration holds at most these image types.
IMAGE_TYPES_PER_PLAN = 2


@rule(subject="manifest", os="any",
      id="OFFER-PUBLISHER-ID", title="The publisher namespace is URL-safe",
      covers=("OFR-URL",),
      remediation="Use your publisher ID exactly as registered: lowercase letters, digits, "
                  "'-' and '_', 3 to 50 characters.",
      severity=Severity.FAIL)
def publisher_id(ctx: OfferContext) -> Iterator[Outcome]:
    """The namespace starts both public URLs."""
    value = ctx.manifest.publisher
    for problem in ids.external_id_problems(value, "the publisher namespace"):
        yield Outcome(None, f"publisher {value!r}: {problem}", (ctx.ev(("publisher",), value),))


@rule(subject="manifest", os="any",
      id="OFFER-ID", title="The offer ID is URL-safe, 3 to 50 characters",
      covers=("OFR-URL", "OFR-PARENT"),
      remediation="Choose an offer ID of lowercase letters, digits, '-' and '_' (3 to 50): it "
                  "appears in public URLs and cannot change once published.",
      severity=Severity.FAIL)
def offer_id(ctx: OfferContext) -> Iterator[Outcome]:
    """The offer ID appears in both public URLs and is Partner Center's product externalId."""
    value = ctx.manifest.offer.id
    for problem in ids.external_id_problems(value, "the offer ID"):
        yield Outcome(None, f"offer.id {value!r}: {problem}", (ctx.ev(("offer", "id"), value),))


@rule(subject="manifest", os="any",
      id="OFFER-SKU-ID", title="SKU IDs are URL-safe and within the length rules",
      covers=("OFR-URL", "OFR-SKU-ID"),
      remediation="Use at most 50 lowercase letters, digits and '-' (Partner Center also "
                  "allows '_'), not ending with '-'.",
      severity=Severity.FAIL)
def sku_id(ctx: OfferContext) -> Iterator[Outcome]:
    """CPP's rule, with '_' where the profile follows Partner Center (rulings)."""
    underscore = bool(ctx.threshold("sku_id_allows_underscore", True))
    for key, sku in ctx.skus():
        for problem in ids.sku_id_problems(sku.id, underscore):
            yield Outcome(None, f"{_dotted(key)}.id {sku.id!r}: {problem}",
                          (ctx.ev((*key, "id"), sku.id),))


@rule(subject="manifest", os="any",
      id="OFFER-SKU-UNIQUE", title="SKU IDs are unique within the offer",
      covers=("OFR-SKU-ID",),
      remediation="Give each SKU its own ID; to publish a new image of a SKU, add a version "
                  "to it instead.",
      severity=Severity.FAIL)
def sku_unique(ctx: OfferContext) -> Iterator[Outcome]:
    """Two SKUs with one ID would have one URL; Partner Center would take one of them."""
    first: dict[str, Key] = {}
    for key, sku in ctx.skus():
        if sku.id in first:
            earlier = ctx.loaded.line((*first[sku.id], "id"))
            yield Outcome(None, f"{_dotted(key)}.id: SKU ID {sku.id!r} is already used on line "
                          f"{earlier}", (ctx.ev((*key, "id"), sku.id),
                                         ctx.ev((*first[sku.id], "id"), sku.id)))
        else:
            first[sku.id] = key


@rule(subject="manifest", os="any",
      id="OFFER-PLAN", title="Each plan holds at most one Gen1 and one Gen2 SKU that agree",
      covers=("OFR-PARENT", "OFR-SKU-ID"),
      remediation="Give a plan at most two SKUs, one gen1 and one gen2, with the same OS, "
                  "sizes and properties; or give them different plans.",
      severity=Severity.FAIL)
def plans(ctx: OfferContext) -> Iterator[Outcome]:
    """Partner Center's plan: 3-50 character ID; x64Gen1 and x64Gen2 each with its SKU ID."""
    for plan_id, members in ctx.plans().items():
        first_key, first = members[0]
        plan_key = (*first_key, "plan") if first.plan is not None else (*first_key, "id")
        for problem in ids.external_id_problems(plan_id, "the plan ID"):
            yield Outcome(None, f"plan {plan_id!r}: {problem}", (ctx.ev(plan_key, plan_id),))
        if len(members) > IMAGE_TYPES_PER_PLAN:
            yield Outcome(None, f"plan {plan_id!r} has {len(members)} SKUs: a plan holds at most "
                          f"{IMAGE_TYPES_PER_PLAN} (one gen1, one gen2)",
                          tuple(ctx.ev(k) for k, _ in members))
        types: dict[str, str] = {}
        for key, sku in members:
            if sku.image_type in types:
                yield Outcome(None, f"plan {plan_id!r}: SKUs {types[sku.image_type]!r} and "
                              f"{sku.id!r} are both {sku.image_type}: each image type needs "
                              "its own plan or its own SKU type",
                              (ctx.ev((*key, "image_type"), sku.image_type),))
            types.setdefault(sku.image_type, sku.id)
            for name in ("os", "recommended_sizes", "properties", "open_ports"):
                if getattr(sku, name) != getattr(first, name):
                    yield Outcome(None, f"plan {plan_id!r}: SKU {sku.id!r} differs from "
                                  f"{first.id!r} in {name}: a plan has one technical "
                                  "configuration", (ctx.ev((*key, name)),))


@rule(subject="manifest", os="any",
      id="OFFER-TEXT", title="Titles and summaries are present, short and on one line",
      covers=("OFR-SUMMARY",),
      remediation=f"Keep titles to {MAX_TITLE} characters and summaries to {MAX_SUMMARY}, "
                  "on one line, readable by customers.",
      severity=Severity.FAIL)
def texts(ctx: OfferContext) -> Iterator[Outcome]:
    """The summary is customer-visible (OFR-SUMMARY); CPP's limits are 50 and 100 (§3.4)."""
    fields: list[tuple[Key, str, int]] = [(("offer", "title"), ctx.manifest.offer.title,
                                           MAX_TITLE)]
    for key, sku in ctx.skus():
        fields += [((*key, "title"), sku.title, MAX_TITLE),
                   ((*key, "summary"), sku.summary, MAX_SUMMARY)]
    for key, value, limit in fields:
        name = _dotted(key)
        if not value.strip():
            yield Outcome(None, f"{name} is empty", (ctx.ev(key, value),))
        elif len(value) > limit:
            yield Outcome(None, f"{name} is {len(value)} characters: at most {limit}",
                          (ctx.ev(key, value, f"at most {limit} characters"),))
        bad = _unreadable(value)
        if bad is not None:
            yield Outcome(None, f"{name} holds {bad}", (ctx.ev(key),))


#: Bidirectional embeddings, overrides, isolates and marks: they make a title read in another
#: order than it is written (U+202E turns "exe.txt" around) wherever it is shown.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unreadable(value: str) -> str | None:
    """What in a customer-visible text cannot be shown as written, or None."""
    for c in value:
        code = ord(c)
        if code < 32 or 0x7F <= code < 0xA0:
            return "a line break or a control character"
        if c in _BIDI:
            return f"a bidirectional control character (U+{code:04X})"
        if 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            return f"a character that is not text (U+{code:04X})"
    return None
