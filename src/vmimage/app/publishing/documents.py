"""The JSON documents of the service's API: request bodies in the manifest's own shape, and
what the service answers.

A SKU or a version is sent exactly as it is written in ``offer.yaml`` (the keys of
``docs/offer.md``, validated by the manifest's own models, :mod:`vmimage.offer.model`), so a
publisher moves between the file and the API without translating, and the rules judge both
alike. Identifiers are bounded (:data:`ID_MAX`) only because they are stored and looked up; the
marketplace's own limits (50 characters...) are rules, reported by the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from vmimage.offer.model import ImageType, OpenPort, OsInfo, Sku, Text, UrlText, VmProperties

# The manifest's own models serve as bodies as they are; re-exported for the routers.
from vmimage.offer.model import ImageVersion as ImageVersion
from vmimage.offer.model import Questionnaire as Questionnaire

#: The longest identifier (offer, plan, SKU, version) the service stores.
ID_MAX = 100
Ident = Annotated[Text, StringConstraints(max_length=ID_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OfferCreate(_Body):
    """A new offer: its ID (in public URLs, OFR-URL), title, and where its VHDs are."""

    id: Ident
    title: Text
    container_url: UrlText | None = Field(
        default=None, description="storage.container_url of the manifest: a disk given as a "
                                  "file is at <container_url>/<file name>.")


class OfferUpdate(_Body):
    """What of an offer may change (until it is first pushed to staging)."""

    title: Text | None = None
    container_url: UrlText | None = None


class SkuCreate(Sku):
    """A SKU as in ``offer.yaml``; its versions may be sent with it or added later."""

    id: Ident  # the manifest's Text, bounded for storage
    plan: Ident | None = None
    versions: list[ImageVersion] = Field(default_factory=list)


class SkuUpdate(_Body):
    """The SKU's listing and technical configuration: each key given replaces its value."""

    plan: Ident | None = None
    title: Text | None = None
    summary: Text | None = None
    os: OsInfo | None = None
    image_type: ImageType | None = None
    recommended_sizes: list[Text] | None = None
    properties: VmProperties | None = None
    open_ports: list[OpenPort] | None = None
    questionnaire: Questionnaire | None = None


class SasBody(_Body):
    """SAS URIs (or tokens) for a version's disks, as ``submit render --sas-file`` reads them:
    a blob's SAS URI applies to that blob, a container's to every disk in it, a bare token to
    every disk (docs/offer.md)."""

    sas: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(min_length=1,
                                                                          max_length=64)


class CertificationBody(_Body):
    """The questionnaire answers (CRT-QUESTIONNAIRE); the SKU's own are used when absent."""

    questionnaire: Questionnaire | None = None


class TokenCreate(_Body):
    """A label to tell the token apart in listings."""

    label: Annotated[str, StringConstraints(max_length=200)] = ""


class ManifestBody(_Body):
    """An ``offer.yaml`` as text, and the name it is reported under (as the CLI reports the
    file's path)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = "offer.yaml"
    text: str


class Error(BaseModel):
    """Every refusal: one line saying what is wrong and what to do."""

    error: str
    details: list[dict[str, Any]] | None = Field(
        default=None, description="With 422 from a body that does not fit its model: each "
                                  "problem's location and message.")
    report: dict[str, Any] | None = Field(
        default=None, description="With 422 from a rule: the findings, in the JSON report "
                                  "format of `vmimage offer validate --format json`.")


class Health(BaseModel):
    """Whether the service runs, and on what."""

    status: str
    database: str
    schema_revision: str
    profile: str


class TokenOut(BaseModel):
    """An API token as listed: never the token itself."""

    id: int
    label: str
    prefix: str
    created: datetime
    revoked: bool


class TokenIssued(TokenOut):
    """A new token: ``token`` is shown this once and stored only as its SHA-256."""

    token: str


class Me(BaseModel):
    """The publisher a token belongs to."""

    publisher: str
    #: The subscription ID in the classic Create VM Image API's paths.
    subscription: str
    token: TokenOut


class CertificateIn(BaseModel):
    """A management certificate to register: PEM, or base64 DER (a ``.cer`` file's content).
    The certificate only: a private key is refused."""

    certificate: str = Field(max_length=65536)


class CertificateOut(BaseModel):
    """A management certificate (the public certificate; no private key is ever sent)."""

    id: int
    sha256: str
    thumbprint: str
    subject: str
    not_after: datetime
    created: datetime
    #: The subscription the certificate is associated with (the classic API's paths).
    subscription: str


class SasOut(BaseModel):
    """A disk's SAS URI, signature masked, and its fields that are not secret."""

    uri: str
    fields: dict[str, str]


class DiskOut(BaseModel):
    """A disk of a version as the manifest has it, with the blob it names and its SAS."""

    lun: int | None
    file: str | None
    url: str | None
    host_caching: str | None
    empty_size: str | None
    blob_url: str | None
    sas: SasOut | None


class JobOut(BaseModel):
    """A background job (a certification run): where it stands, how often it was started
    (a run whose process died is started again), and what it found."""

    id: str
    kind: str
    state: str = Field(description="queued, running, succeeded or failed")
    attempts: int
    max_attempts: int
    created: datetime
    started: datetime | None
    finished: datetime | None
    updated: datetime
    error: str | None = Field(description="Why the job failed (one line; the certification "
                                          "outcome itself is in `result` and the reports).")
    result: dict[str, Any] | None
    certification: int | None = Field(description="The certification request it runs.")
    version: str | None = Field(description="The API address of the image version.")
    reports: list[str] = Field(description="Download addresses of the reports it stored.")


class CertificationOut(BaseModel):
    """A certification request, its questionnaire answers, and the job that runs it with
    the reports of that run once it is done."""

    id: int
    state: str
    questionnaire: dict[str, Any]
    requested: datetime
    finished: datetime | None
    job_id: str | None
    message: str | None
    job: JobOut | None = None
    reports: list[str] = Field(default_factory=list,
                               description="Download addresses of the run's reports.")


class VersionBrief(BaseModel):
    """A version's number and state."""

    version: str
    state: str


class VersionOut(BaseModel):
    """An image version: its disks (or gallery image), its state, its latest certification."""

    sku: str
    version: str
    state: str
    editable: bool
    state_changed: datetime
    os_disk: DiskOut | None
    data_disks: list[DiskOut]
    gallery_image: dict[str, str] | None
    certification: CertificationOut | None


class SkuOut(BaseModel):
    """A SKU as in ``offer.yaml``, with its versions' states."""

    id: str
    plan: str
    title: str
    summary: str
    os: dict[str, str]
    image_type: str
    recommended_sizes: list[str]
    properties: dict[str, bool]
    open_ports: list[dict[str, str]]
    questionnaire: dict[str, Any]
    listing_locked: bool
    versions: list[VersionBrief]


class PlanOut(BaseModel):
    """A Partner Center plan and the SKUs (image types) it holds."""

    id: str
    skus: list[dict[str, str]]


class OfferOut(BaseModel):
    """An offer: where it stands (draft, staging, published) and what it holds."""

    id: str
    title: str
    container_url: str | None
    state: str
    listing_locked: bool
    skus: list[str]
    plans: list[str]
    versions: dict[str, int]
    created: datetime
    updated: datetime


class ReportOut(BaseModel):
    """A stored report; ``download`` is its address."""

    id: int
    format: str
    source: str
    size: int
    sha256: str
    created: datetime
    certification: int | None
    download: str


class Moved(BaseModel):
    """One version a transition moved."""

    sku: str
    version: str
    state: str


class TransitionOut(BaseModel):
    """What pushing an offer to staging (or publishing it) moved."""

    offer: str
    state: str
    moved: list[Moved]


class PushOut(BaseModel):
    """What ``offer push`` gets back: whether the manifest was stored, and the findings."""

    stored: bool
    offer: str | None
    report: dict[str, Any]
