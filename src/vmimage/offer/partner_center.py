"""Today's route: Partner Center's ``virtual-machine-plan-technical-configuration`` resource.

One resource per plan: the plan's OS, recommended sizes, properties, open ports, its SKUs
(``x64Gen1`` and/or ``x64Gen2``, each with its own SKU ID) and every image version, each image
given by SAS URIs (``sourceType: sasUri``, an OS disk and data disks by LUN) or by an Azure
Compute Gallery image version (``sharedImageGallery``). Every resource is validated against the
vendored, pinned schema (draft 2020-12) before anything is written; the configure request that
carries them (``POST .../configure``) is rendered too, as ``configure.json``.
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from importlib import resources
from typing import Any

from vmimage.offer.model import DataDisk, ImageVersion, Manifest, Sku
from vmimage.offer.sas import SasTokens
from vmimage.offer.submission import Rendered, blob_url
from vmimage.secrets import redact

SCHEMA_HOST = "https://product-ingestion.azureedge.net/schema"
SCHEMA_VERSION = "2022-03-01-preview2"
RESOURCE = "virtual-machine-plan-technical-configuration"
RESOURCE_SCHEMA = f"{SCHEMA_HOST}/{RESOURCE}/{SCHEMA_VERSION}"
CONFIGURE_SCHEMA = f"{SCHEMA_HOST}/configure/{SCHEMA_VERSION}"
SCHEMA_FILE = f"schemas/partner-center/{RESOURCE}-{SCHEMA_VERSION}.json"
IMAGE_TYPES = {"gen1": "x64Gen1", "gen2": "x64Gen2"}
#: A SKU's properties: the manifest's names and the resource's.
PROPERTIES = {
    "supports_extensions": "supportsExtensions", "supports_backup": "supportsBackup",
    "supports_accelerated_networking": "supportsAcceleratedNetworking",
    "supports_cloud_init": "supportsCloudInit", "supports_nvme": "supportsNVMe",
    "supports_hibernation": "supportsHibernation", "supports_aad_login": "supportsAadLogin",
    "supports_remote_connection": "supportsRemoteConnection",
    "requires_custom_arm_template": "requiresCustomArmTemplate",
    "is_network_virtual_appliance": "isNetworkVirtualAppliance",
}


@cache
def schema() -> dict[str, Any]:
    """The vendored resource schema."""
    text = resources.files("vmimage").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_problems(resource: dict[str, Any]) -> list[str]:
    """Where ``resource`` breaks the pinned schema (``path: message``), empty when it holds."""
    # Imported by name: jsonschema ships no type stubs, and only rendering needs it.
    validator_class = importlib.import_module("jsonschema").Draft202012Validator
    validator = validator_class(schema(), format_checker=validator_class.FORMAT_CHECKER)
    out = []
    for error in sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(resource)"
        out.append(redact(f"{where}: {error.message}"))
    return out


class _Plan:
    """Collects one plan's resource from its SKUs."""

    def __init__(self, manifest: Manifest, plan_id: str, tokens: SasTokens | None,
                 out: Rendered) -> None:
        self.manifest, self.plan_id, self.tokens, self.out = manifest, plan_id, tokens, out
        self.versions: dict[str, list[dict[str, Any]]] = {}
        #: Disks the given tokens do not cover (``where (url)``): one problem for them all.
        self.untokened: list[str] = []

    def uri(self, where: str, url: str | None) -> str | None:
        """The disk's SAS URI; without tokens at all, its bare URL (a preview, with a warning);
        None, with a problem, when it has no URL or the tokens given miss it."""
        if url is None:
            self.out.problems.append(f"{where}: no blob URL (give 'url' or "
                                     "storage.container_url)")
            return None
        if self.tokens is None:
            self.out.warnings.append(f"{where}: no SAS token for {url}: the document names the "
                                     "bare blob URL (give --sas-env or --sas-file)")
            return url
        sas = self.tokens.sas_uri(url)
        if sas is None:
            self.untokened.append(f"{where} ({redact(url)})")
        return sas

    def data_disk(self, where: str, disk: DataDisk) -> dict[str, Any] | None:
        if disk.empty_bytes is not None:
            self.out.problems.append(f"{where}: LUN {disk.lun} is an empty size; Partner Center "
                                     "needs a VHD for every data disk (OFR-SKU-DISKS)")
            return None
        uri = self.uri(f"{where} LUN {disk.lun}", blob_url(self.manifest, disk))
        return None if uri is None else {"lunNumber": disk.lun, "uri": uri}

    def source(self, sku: Sku, version: ImageVersion) -> dict[str, Any] | None:
        where = f"{sku.id} {version.version}"
        if version.gallery_image is not None:
            return {"sourceType": "sharedImageGallery",
                    "sharedImage": {"tenantId": version.gallery_image.tenant_id,
                                    "resourceId": version.gallery_image.resource_id}}
        assert version.os_disk is not None
        os_uri = self.uri(f"{where} OS disk", blob_url(self.manifest, version.os_disk))
        data = [self.data_disk(where, d) for d in sorted(version.data_disks,
                                                         key=lambda d: d.lun)]
        if os_uri is None or any(d is None for d in data):
            return None
        return {"sourceType": "sasUri", "osDisk": {"uri": os_uri},
                "dataDisks": [d for d in data if d is not None]}

    def add(self, sku: Sku) -> None:
        for version in sku.versions:
            source = self.source(sku, version)
            if source is not None:
                self.versions.setdefault(version.version, []).append(
                    {"imageType": IMAGE_TYPES[sku.image_type], "source": source})

    def resource(self, skus: list[Sku]) -> dict[str, Any]:
        first = skus[0]
        props = first.properties.model_dump()
        resource: dict[str, Any] = {
            "$schema": RESOURCE_SCHEMA,
            "product": {"externalId": self.manifest.offer.id},
            "plan": {"externalId": self.plan_id},
            "operatingSystem": {"family": first.os.family, "type": first.os.type,
                                "friendlyName": first.os.friendly_name},
            "recommendedVmSizes": list(first.recommended_sizes),
            "openPorts": [{"label": p.label, "portRange": p.ports, "protocol": p.protocol}
                          for p in first.open_ports],
            "vmProperties": {camel: props[snake] for snake, camel in PROPERTIES.items()},
            "skus": [{"imageType": IMAGE_TYPES[s.image_type], "skuId": s.id} for s in skus],
            "vmImageVersions": [
                {"versionNumber": number,
                 "vmImages": sorted(images, key=lambda i: str(i["imageType"]))}
                for number, images in self.versions.items()],
        }
        return resource


def plan_resources(manifest: Manifest, tokens: SasTokens | None,
                   out: Rendered) -> dict[str, dict[str, Any]]:
    """Each plan's resource, by plan ID (problems and warnings go to ``out``)."""
    groups: dict[str, list[Sku]] = {}
    for sku in manifest.skus:
        groups.setdefault(sku.plan_id, []).append(sku)
    resources_by_plan = {}
    untokened: list[str] = []
    for plan_id, skus in groups.items():
        plan = _Plan(manifest, plan_id, tokens, out)
        for sku in skus:
            plan.add(sku)
        resources_by_plan[plan_id] = plan.resource(skus)
        untokened += plan.untokened
    if tokens is not None and untokened:
        # A submission with a bare blob URL fails certification days later: refuse it now.
        out.problems.append(f"no SAS token in {tokens.source} for {len(untokened)} disk(s): "
                            f"{'; '.join(untokened)} (give each blob's SAS URI, or its "
                            "container's)")
    return resources_by_plan


def render_partner_center(manifest: Manifest, tokens: SasTokens | None) -> Rendered:
    """``plan-<plan>.json`` per plan and ``configure.json`` holding them all, each schema-valid."""
    out = Rendered()
    by_plan = plan_resources(manifest, tokens, out)
    if out.problems:
        return out
    for plan_id, resource in by_plan.items():
        out.problems += [f"plan {plan_id}: {p}" for p in schema_problems(resource)]
        out.documents[f"plan-{plan_id}.json"] = json.dumps(resource, indent=2) + "\n"
    if out.problems:
        out.documents.clear()
        return out
    configure = {"$schema": CONFIGURE_SCHEMA, "resources": list(by_plan.values())}
    out.documents["configure.json"] = json.dumps(configure, indent=2) + "\n"
    return out
