"""The states of an image version, and what may change in each (PUB-CERT, PUB-NEXT, OFR-SUMMARY,
OFR-PARENT).

::

    draft ──request──▶ certification-requested ──(job engine)──▶ certified ──stage──▶ staging
      ▲ ▲                  │              │                                            │
      │ └───withdraw───────┘              └──(job engine)──▶ failed                 publish
      └────────────────edit─────────────────────────────────────┘ │                     ▼
                             certification-requested ◀──request───┘                published

- A version's content (disks, SAS URIs, gallery image) changes only in ``draft`` or
  ``failed``; editing a failed version makes it a draft again. What was submitted for
  certification, certified, staged or published is never edited: publish a new patch version
  (PUB-VERSION).
- Only the job engine moves a version out of ``certification-requested`` (certified or
  failed), and only from the report of a real run; withdrawing the request returns it to draft.
- Staging is the offer's: pushing the offer to staging pushes every SKU's certified versions
  (OFR-PARENT); publishing moves what is in staging.
- A SKU's listing (title, summary, plan, OS, sizes, properties, ports) is editable until the
  SKU is first pushed to staging (OFR-SUMMARY); the offer's title and container until the offer
  is. SKU and offer identifiers never change: they are in public URLs (OFR-URL).
"""

from __future__ import annotations

from enum import StrEnum

from vmimage.app.publishing.errors import Conflict


class State(StrEnum):
    """Where an image version stands."""

    DRAFT = "draft"
    CERTIFICATION_REQUESTED = "certification-requested"
    CERTIFIED = "certified"
    FAILED = "failed"
    STAGING = "staging"
    PUBLISHED = "published"


#: Transition name -> (the states it leaves from, the state it reaches).
TRANSITIONS: dict[str, tuple[frozenset[State], State]] = {
    "request-certification": (frozenset({State.DRAFT, State.FAILED}),
                              State.CERTIFICATION_REQUESTED),
    "withdraw-certification": (frozenset({State.CERTIFICATION_REQUESTED}), State.DRAFT),
    "certification-passed": (frozenset({State.CERTIFICATION_REQUESTED}), State.CERTIFIED),
    "certification-failed": (frozenset({State.CERTIFICATION_REQUESTED}), State.FAILED),
    "stage": (frozenset({State.CERTIFIED}), State.STAGING),
    "publish": (frozenset({State.STAGING}), State.PUBLISHED),
    "edit": (frozenset({State.DRAFT, State.FAILED}), State.DRAFT),
}
#: States whose content is fixed: submitted, certified, staged or published.
LOCKED = frozenset({State.CERTIFICATION_REQUESTED, State.CERTIFIED, State.STAGING,
                    State.PUBLISHED})
#: States that have been pushed to staging: the listing is frozen (OFR-SUMMARY).
STAGED = frozenset({State.STAGING, State.PUBLISHED})
#: What a publisher may change while a version is in flight (requested): nothing of the SKU's
#: technical configuration, which the certification run reads.
IN_FLIGHT = frozenset({State.CERTIFICATION_REQUESTED})
#: States a staging or published offer is built from.
READY = frozenset({State.CERTIFIED, State.STAGING, State.PUBLISHED})


def transition(name: str, current: str, what: str) -> State:
    """The state ``name`` leads to from ``current``.

    Raises:
        Conflict: ``name`` does not leave from ``current`` (the message says from where it
            does).
    """
    sources, target = TRANSITIONS[name]
    if State(current) not in sources:
        allowed = " or ".join(sorted(sources))
        raise Conflict(f"{what} is {current}: {name.replace('-', ' ')} needs it {allowed}")
    return target


def check_editable(current: str, what: str) -> None:
    """Refuse to edit a version whose content is fixed.

    Raises:
        Conflict: the version is submitted, certified, staged or published.
    """
    if State(current) in LOCKED:
        raise Conflict(f"{what} is {current}: its image cannot change; add a new patch "
                       "version instead (PUB-VERSION)")
