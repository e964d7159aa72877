"""Partner Center's product-ingestion "configure" API, served (issue 14): ``POST .../configure``
with resource documents, answered with a job; ``GET .../configure/{jobId}/status`` until it
is completed (``shared/docs/classic-and-ingestion-apis.md`` §4, §6).

A request is checked at once (its shape, each resource against the vendored schema: 400 with
Partner Center's error shape) and recorded as a job of the service's job engine; the job
applies the resources to the publisher's records through the same use cases as the JSON API:

- ``virtual-machine-plan-technical-configuration``: the plan's SKUs (operating system, sizes,
  ports, properties) and image versions with their SAS URIs. The offer is rendered as a
  manifest, changed, and stored by ``vmimage offer push``'s use case, so every manifest rule
  of the one registry judges it; a failing rule fails the job (``businessValidationError``).
  A SKU the service does not have yet takes its listing (title, summary, questionnaire) from
  another SKU of the same plan: Partner Center keeps listings per plan, this service per SKU.
- ``submission``: ``preview`` requests certification of every draft version that has its SAS
  URIs (PUB-CERT), or, when nothing is left to certify, pushes the offer to staging;
  ``live`` publishes what is in staging (PUB-*); ``draft`` changes nothing more.

The resources hold SAS URIs: the job's payload keeps the document sealed (the key file's
AES-GCM), never in clear. Every step is idempotent, so a job run again after its process died
applies the same resources to the same end.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from vmimage.app.publishing import certification, offers, release, versions
from vmimage.app.publishing.errors import Conflict, NotFound, PublishingError, Refused
from vmimage.app.publishing.manifests import push_manifest
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from vmimage.catalog.models import Publisher
from vmimage.jobs.model import Done, JobSpec
from vmimage.jobs.model import Job as JobView
from vmimage.offer import partner_center as pc
from vmimage.secrets import redact, register_sas
from vmimage.textsafe import printable

#: The kind of job that applies a configure request.
CONFIGURE = "configure"
STATUS_SCHEMA = "https://schema.mp.microsoft.com/schema/configure-status/2022-07-01"
#: The schema hosts Partner Center has used (the vendored files name the first).
SCHEMA_HOSTS = ("https://product-ingestion.azureedge.net/schema/",
                "https://schema.mp.microsoft.com/schema/")
TECHNICAL = "virtual-machine-plan-technical-configuration"
SUBMISSION = "submission"
SUPPORTED = (TECHNICAL, SUBMISSION)
MAX_RESOURCES = 100
NEVER = "0001-01-01T00:00:00"
_IMAGE_TYPES = {v: k for k, v in pc.IMAGE_TYPES.items()}


class IngestionError(PublishingError):
    """A refusal in Partner Center's shape: ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, message: str, code: str = "badRequest", status: int = 400,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.details = code, status, details or []


def error(code: str, message: str) -> dict[str, Any]:
    """One error of a job, as Partner Center writes them (``details`` always a list)."""
    return {"code": code, "message": printable(redact(" ".join(message.split())))[:2000],
            "details": []}


def resource_type(schema_uri: object) -> str | None:
    """``virtual-machine-plan-technical-configuration`` of a resource's ``$schema``."""
    if not isinstance(schema_uri, str):
        return None
    for host in SCHEMA_HOSTS:
        if schema_uri.startswith(host):
            parts = schema_uri.removeprefix(host).split("/")
            return parts[0] if len(parts) == 2 and parts[1] else None
    return None


def _reference(value: object) -> str | None:
    """The external ID a reference names (``{"externalId": X}`` or ``product/X``)."""
    if isinstance(value, dict) and isinstance(value.get("externalId"), str):
        return str(value["externalId"])
    if isinstance(value, str) and "/" in value:
        return value.split("/", 1)[1]
    return None


def read_request(body: object) -> list[dict[str, Any]]:
    """The resources of a configure request, checked.

    Raises:
        IngestionError: not a configure document, an unsupported or invalid resource.
    """
    if not isinstance(body, dict) or resource_type(body.get("$schema")) != "configure":
        raise IngestionError("the body is not a configure document (its $schema names "
                             "configure)")
    resources = body.get("resources")
    if not isinstance(resources, list) or not resources:
        raise IngestionError("resources: a non-empty list is required")
    if len(resources) > MAX_RESOURCES:
        raise IngestionError(f"resources: at most {MAX_RESOURCES} in one request")
    problems: list[dict[str, Any]] = []
    for index, resource in enumerate(resources):
        kind = resource_type(resource.get("$schema")) if isinstance(resource, dict) else None
        if kind not in SUPPORTED:
            problems.append(error("invalidResource", f"resources[{index}]: this service takes "
                                                     f"{' and '.join(SUPPORTED)} resources"))
            continue
        assert isinstance(resource, dict)
        if _reference(resource.get("product")) is None:
            problems.append(error("invalidReference", f"resources[{index}]: product names no "
                                                      "externalId"))
        if kind == TECHNICAL:
            shaped = {**resource, "$schema": pc.RESOURCE_SCHEMA}
            problems += [error("schemaValidationError", f"resources[{index}]/{p}")
                         for p in pc.schema_problems(shaped)]
        elif not isinstance(resource.get("target"), dict) or resource["target"].get(
                "targetType") not in ("draft", "preview", "live"):
            problems.append(error("schemaValidationError", f"resources[{index}]/target: "
                                                           "targetType draft, preview or live"))
    if problems:
        raise IngestionError("the request has invalid resources", "invalidRequest",
                             details=problems)
    return resources


_submit: Callable[[JobSpec], JobView] | None = None


def set_submitter(submit: Callable[[JobSpec], JobView] | None) -> None:
    """Register the job engine's submit (the server's, at its start)."""
    global _submit
    _submit = submit


def configure(store: Store, caller: Caller, body: object) -> dict[str, Any]:
    """Record a configure request as a job; its status (notStarted).

    Raises:
        IngestionError: the request is not usable, or no job engine runs here.
    """
    resources = read_request(body)
    if _submit is None:
        raise IngestionError("no job engine runs in this process", "serviceUnavailable", 503)
    key = f"{CONFIGURE}:{uuid.uuid4().hex}"
    sealed = store.sealer.seal(json.dumps(resources), key)
    job = _submit(JobSpec(CONFIGURE, key, {"document": base64.b64encode(sealed).decode(),
                                           "namespace": caller.namespace},
                          caller.publisher_id))
    return _status(job.id, QUEUED, None, job.created.isoformat() if job.created else None, None)


def _guid(job_id: str) -> str:
    return str(uuid.UUID(hex=job_id))


def _status(job_id: str, state: str, result: dict[str, Any] | None, started: str | None,
            finished: str | None) -> dict[str, Any]:
    status = {QUEUED: "notStarted", RUNNING: "running"}.get(state, "completed")
    if state == SUCCEEDED and result is not None:
        outcome, errors = str(result.get("jobResult", "failed")), list(result.get("errors", []))
    elif state == FAILED:
        outcome, errors = "failed", [error("internalError", "the job could not be run")]
    else:
        outcome, errors = "pending", []
    return {"$schema": STATUS_SCHEMA, "jobId": _guid(job_id), "jobStatus": status,
            "jobResult": outcome, "jobStart": started or NEVER, "jobEnd": finished or NEVER,
            "errors": errors}


def _job(store: Store, caller: Caller, job_id: str) -> Job:
    key = job_id.replace("-", "").lower()
    with store.read() as session:
        row = session.scalar(select(Job).where(Job.id == key, Job.kind == CONFIGURE,
                                               Job.publisher_fk == caller.publisher_id))
        if row is None:
            raise IngestionError(f"no configure job {job_id[:40]!r}", "notFound", 404)
        session.expunge(row)
        return row


def job_status(store: Store, caller: Caller, job_id: str) -> dict[str, Any]:
    """``GET .../configure/{jobId}/status``.

    Raises:
        IngestionError: no such job of this publisher (404).
    """
    row = _job(store, caller, job_id)
    return _status(row.id, row.state, row.result,
                   row.started_at.isoformat() if row.started_at else row.created_at.isoformat(),
                   row.finished_at.isoformat() if row.finished_at else None)


def job_details(store: Store, caller: Caller, job_id: str) -> dict[str, Any]:
    """``GET .../configure/{jobId}``: the status and the resources it changed (durable IDs).

    Raises:
        IngestionError: no such job (404).
    """
    row = _job(store, caller, job_id)
    details = job_status(store, caller, job_id)
    details["resources"] = [{"id": r} for r in (row.result or {}).get("resources", [])]
    return details


# ---- the job ------------------------------------------------------------------------------


def _snake_properties(props: dict[str, Any]) -> dict[str, Any]:
    camel = {c: s for s, c in pc.PROPERTIES.items()}
    return {camel[k]: v for k, v in props.items() if k in camel}


def _sku_for(manifest: dict[str, Any], sku_id: str, plan: str, errors: list[dict[str, Any]]
             ) -> dict[str, Any] | None:
    skus: list[dict[str, Any]] = manifest.setdefault("skus", [])
    found = next((s for s in skus if s.get("id") == sku_id), None)
    if found is not None:
        return found
    sibling = next((s for s in skus if s.get("plan") == plan), None)
    if sibling is None:
        errors.append(error("invalidState", f"SKU {sku_id}: plan {plan} has no SKU here to "
                                            "take its listing from: push the offer first "
                                            "(vmimage offer push)"))
        return None
    made = {k: v for k, v in sibling.items() if k not in ("id", "versions", "image_type")}
    made.update(id=sku_id, versions=[])
    skus.append(made)
    return made


def _source(image: dict[str, Any], sas: list[str]) -> dict[str, Any]:
    source = image["source"]
    if source.get("sourceType") == "sharedImageGallery":
        shared = source.get("sharedImage", {})
        return {"gallery_image": {"tenant_id": shared.get("tenantId"),
                                  "resource_id": shared.get("resourceId")}}
    os_uri = str(source["osDisk"]["uri"])
    data = [(int(d["lunNumber"]), str(d["uri"])) for d in source.get("dataDisks", [])]
    sas += [u for u in [os_uri, *(u for _, u in data)] if "?" in u]
    return {"os_disk": {"url": os_uri.partition("?")[0]},
            "data_disks": [{"lun": lun, "url": uri.partition("?")[0]} for lun, uri in data]}


def merge_technical(manifest: dict[str, Any], resource: dict[str, Any],
                    errors: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """Apply a technical configuration to the offer's manifest; the SAS URIs of each (SKU,
    version) it names."""
    plan = _reference(resource.get("plan")) or ""
    by_type: dict[str, dict[str, Any]] = {}
    for entry in resource.get("skus", []):
        sku = _sku_for(manifest, str(entry["skuId"]), plan, errors)
        if sku is None:
            continue
        sku.update(plan=plan, image_type=_IMAGE_TYPES.get(str(entry["imageType"]), "gen1"))
        system = resource.get("operatingSystem", {})
        sku["os"] = {"family": system.get("family"), "type": system.get("type"),
                     "friendly_name": system.get("friendlyName")}
        if "recommendedVmSizes" in resource:
            sku["recommended_sizes"] = list(resource["recommendedVmSizes"])
        if "openPorts" in resource:
            sku["open_ports"] = [{"label": p.get("label"), "ports": p.get("portRange"),
                                  "protocol": p.get("protocol")} for p in resource["openPorts"]]
        if "vmProperties" in resource:
            sku["properties"] = _snake_properties(resource["vmProperties"])
        by_type[str(entry["imageType"])] = sku
    sas: dict[tuple[str, str], list[str]] = {}
    for version in resource.get("vmImageVersions", []):
        number = str(version["versionNumber"])
        for image in version.get("vmImages", []):
            sku = by_type.get(str(image["imageType"]))
            if sku is None:
                errors.append(error("invalidReference", f"version {number}: no SKU of image "
                                                        f"type {image['imageType']}"))
                continue
            uris: list[str] = []
            made = {"version": number, **_source(image, uris)}
            kept = [v for v in sku.setdefault("versions", []) if v.get("version") != number]
            sku["versions"] = [*kept, made]
            if uris:
                sas[(str(sku["id"]), number)] = uris
    return sas


def _rule_errors(findings: list[Any]) -> list[dict[str, Any]]:
    """Each failing rule, as Partner Center reports a business rule."""
    return [error("businessValidationError", f"{f.check_id}: {f.message}") for f in findings
            if f.failing]


def _apply_offer(store: Store, caller: Caller, offer_id: str, resources: list[dict[str, Any]],
                 name: str, errors: list[dict[str, Any]], touched: list[str]) -> None:
    try:
        manifest = json.loads(offers.manifest_text(store, caller, offer_id))
    except NotFound:
        errors.append(error("invalidId", f"no product {offer_id!r} of publisher "
                                         f"{caller.namespace}: push the offer first "
                                         "(vmimage offer push)"))
        return
    sas: dict[tuple[str, str], list[str]] = {}
    for resource in resources:
        sas.update(merge_technical(manifest, resource, errors))
    if errors:
        return
    try:
        pushed = push_manifest(store, caller, name, json.dumps(manifest))
    except Conflict as exc:
        errors.append(error("invalidState", str(exc)))
        return
    if not pushed.stored:
        errors.extend(_rule_errors(pushed.report.findings))
        return
    for (sku_id, number), lines in sas.items():
        try:
            versions.set_sas(store, caller, offer_id, sku_id, number, lines)
        except Conflict:
            continue  # submitted already: its SAS URIs were given then
        except PublishingError as exc:
            errors.append(error("businessValidationError", f"{sku_id} {number}: {exc}"))
    touched.append(f"product/{offer_id}")
    touched += sorted({f"plan/{offer_id}/{_reference(r.get('plan'))}" for r in resources})


def _submit_offer(store: Store, caller: Caller, offer_id: str, target: str,
                  errors: list[dict[str, Any]]) -> None:
    try:
        if target == "live":
            release.publish_offer(store, caller, offer_id)
        elif target == "preview":
            drafts = [(s.id, v.version) for s in offers.list_skus(store, caller, offer_id)
                      for v in versions.list_versions(store, caller, offer_id, s.id)
                      if v.state in ("draft", "failed")]
            for sku_id, number in drafts:
                certification.request_certification(store, caller, offer_id, sku_id, number,
                                                    None)
            if not drafts:
                release.stage_offer(store, caller, offer_id)
    except Refused as exc:
        errors.extend(_rule_errors(exc.report.findings)
                      or [error("businessValidationError", str(exc))])
    except PublishingError as exc:
        errors.append(error("invalidState", f"submission of {offer_id} to {target}: {exc}"))


def apply(store: Store, caller: Caller, resources: list[dict[str, Any]],
          name: str) -> dict[str, Any]:
    """Apply the resources; the job's result (``jobResult``, ``errors``, ``resources``)."""
    errors: list[dict[str, Any]] = []
    touched: list[str] = []
    products: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        if resource_type(resource["$schema"]) == TECHNICAL:
            products.setdefault(_reference(resource["product"]) or "", []).append(resource)
    for offer_id, group in products.items():
        _apply_offer(store, caller, offer_id, group, name, errors, touched)
    if not errors:
        for resource in resources:
            if resource_type(resource["$schema"]) == SUBMISSION:
                offer_id = _reference(resource["product"]) or ""
                _submit_offer(store, caller, offer_id, resource["target"]["targetType"], errors)
                touched.append(f"submission/{offer_id}")
    return {"jobResult": "failed" if errors else "succeeded", "errors": errors,
            "resources": touched}


def run_configure(store: Store, job: JobView) -> Done:
    """The handler of a configure job."""
    sealed = base64.b64decode(str(job.payload["document"]))
    resources = json.loads(store.sealer.open(sealed, job.idempotency_key))
    for resource in resources:
        for uri in _uris(resource):
            register_sas(uri.partition("?")[2])
    with store.read() as session:
        publisher = session.get(Publisher, job.publisher_id)
        if publisher is None:
            return Done({"jobResult": "failed", "errors": [error("invalidState",
                                                                 "the publisher is gone")]})
        caller = Caller(publisher.id, publisher.namespace, None)
    return Done(apply(store, caller, resources, f"configure-{job.id}.json"))


def _uris(resource: dict[str, Any]) -> list[str]:
    found = []
    for version in resource.get("vmImageVersions", []):
        for image in version.get("vmImages", []):
            source = image.get("source", {})
            found.append(str(source.get("osDisk", {}).get("uri", "")))
            found += [str(d.get("uri", "")) for d in source.get("dataDisks", [])]
    return [u for u in found if "?" in u]
