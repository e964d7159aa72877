"""What the endpoints serve: the WireServer's XML documents and IMDS's JSON, from one config.

The documents waagent 2.7.3 and cloud-init read (docs: ``provisioning-protocol.md`` §2, §3,
§6): versions, a goal state without certificates and without extensions,
HostingEnvironmentConfig, SharedConfig and FullConfig, and the IMDS ``instance`` document as
each api-version has it. Plain functions of an :class:`EndpointConfig`: no sockets, no log.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote

from vmimage.vm.endpoints.config import (
    _NAMESPACE,
    IMDS_API_VERSIONS,
    WIRE_PROTOCOL,
    WIRE_SUPPORTED,
    EndpointConfig,
)


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + text).encode()


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrib)
    child.text = text
    return child


def versions_xml() -> bytes:
    """``/?comp=versions``: waagent gives up unless 2012-11-30 is preferred or supported."""
    root = ET.Element("Versions")
    _sub(_sub(root, "Preferred"), "Version", WIRE_PROTOCOL)
    supported = _sub(root, "Supported")
    for version in WIRE_SUPPORTED:
        _sub(supported, "Version", version)
    return _xml(root)


def config_url(cfg: EndpointConfig, base: str, kind: str) -> str:
    """The URL of one of the role's configuration documents, as the goal state names it."""
    path = f"/machine/{quote(cfg.container_id, safe='')}/{quote(cfg.role_instance_id, safe='')}"
    return f"{base}{path}?comp=config&type={kind}&incarnation={cfg.incarnation}"


def goal_state_xml(cfg: EndpointConfig, base: str) -> bytes:
    """The goal state: no Certificates (keys come from the OVF or IMDS), no ExtensionsConfig
    (waagent then has an empty extensions goal state and downloads nothing).

    ``base`` is ``http://HOST:PORT`` as the guest reached us: the URLs inside must work from
    where the guest is.
    """
    root = ET.Element("GoalState", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "goalstate10.xsd"})
    _sub(root, "Version", "2010-12-15")
    _sub(root, "Incarnation", str(cfg.incarnation))
    machine = _sub(root, "Machine")
    _sub(machine, "ExpectedState", "Started")
    _sub(_sub(machine, "LBProbePorts"), "Port", "16001")
    container = _sub(root, "Container")
    _sub(container, "ContainerId", cfg.container_id)
    instance = _sub(_sub(container, "RoleInstanceList"), "RoleInstance")
    _sub(instance, "InstanceId", cfg.role_instance_id)
    _sub(instance, "State", "Started")
    configuration = _sub(instance, "Configuration")
    _sub(configuration, "HostingEnvironmentConfig", config_url(cfg, base, "hostingEnvironmentConfig"))
    _sub(configuration, "SharedConfig", config_url(cfg, base, "sharedConfig"))
    _sub(configuration, "FullConfig", config_url(cfg, base, "fullConfig"))
    _sub(configuration, "ConfigName", cfg.config_name)
    return _xml(root)


def _guid(name: str) -> str:
    """A GUID in braces, as Azure writes them, stable for ``name``."""
    return "{" + str(uuid.uuid5(_NAMESPACE, name)) + "}"


def _deployment(parent: ET.Element, cfg: EndpointConfig) -> None:
    """The Deployment, Incarnation and Role elements both config documents start with."""
    guid = _guid(cfg.container_id)
    deployment = _sub(parent, "Deployment", name=cfg.deployment_name, guid=guid, incarnation="1")
    _sub(deployment, "Service", name=cfg.vm_name, guid="{00000000-0000-0000-0000-000000000000}")
    _sub(deployment, "ServiceInstance", name=f"{cfg.deployment_name}.1",
         guid=_guid(cfg.instance_id))
    _sub(parent, "Incarnation", number=str(cfg.incarnation), instance=cfg.role_name,
         guid=_guid(cfg.role_instance_id))


def hosting_env_xml(cfg: EndpointConfig) -> bytes:
    """HostingEnvironmentConfig: waagent reads ``Incarnation@instance``, ``Role@name`` and
    ``Deployment@name`` (the VM, role and tenant names of its telemetry)."""
    root = ET.Element("HostingEnvironmentConfig", version="1.0.0.0",
                      goalStateIncarnation=str(cfg.incarnation))
    _deployment(root, cfg)
    _sub(root, "Role", guid=_guid(cfg.role_name), name=cfg.role_name,
         hostingEnvironmentVersion="1", software="", softwareType="ApplicationPackage",
         entryPoint="", parameters="", settleTimeSeconds="10")
    settings = _sub(root, "HostingEnvironmentSettings", name="full", runtime="")
    _sub(settings, "CAS", mode="full")
    _sub(settings, "PrivilegeLevel", mode="max")
    _sub(root, "ApplicationSettings")
    _sub(root, "ResourceReferences")
    return _xml(root)


def shared_config_xml(cfg: EndpointConfig) -> bytes:
    """SharedConfig: never parsed by waagent (RDMA setup aside), fetched at every goal state."""
    root = ET.Element("SharedConfig", version="1.0.0.0", goalStateIncarnation=str(cfg.incarnation))
    _deployment(root, cfg)
    _sub(root, "Role", guid=_guid(cfg.role_name), name=cfg.role_name,
         settleTimeSeconds="10")
    _sub(root, "LoadBalancerSettings", timeoutSeconds="0", waitLoadBalancerProbeCount="8")
    _sub(root, "OutputEndpoints")
    instances = _sub(root, "Instances")
    instance = _sub(instances, "Instance", id=cfg.role_name, address=cfg.guest_ip)
    _sub(instance, "FaultDomains", randomId="0", updateId="0", updateCount="0")
    _sub(instance, "InputEndpoints")
    return _xml(root)


def full_config_xml(cfg: EndpointConfig) -> bytes:
    """FullConfig: named by every goal state, read by no agent we know; a minimal document."""
    root = ET.Element("FullConfig", version="1.0.0.0", goalStateIncarnation=str(cfg.incarnation))
    _deployment(root, cfg)
    return _xml(root)


#: The api-version that introduced each compute field (Azure's IMDS documentation): an older
#: version's answer lacks it, as Azure's does (waagent's 2018-02-01 client knows no later field).
_COMPUTE_SINCE = {
    "azEnvironment": "2018-10-01", "customData": "2019-02-01", "evictionPolicy": "2020-12-01",
    "isHostCompatibilityLayerVm": "2020-06-01", "licenseType": "2020-09-01",
    "osProfile": "2020-07-15", "placementGroupId": "2017-08-01", "plan": "2018-04-02",
    "priority": "2020-12-01", "provider": "2018-10-01", "publicKeys": "2018-04-02",
    "resourceGroupName": "2017-08-01", "resourceId": "2019-03-11", "subscriptionId": "2017-08-01",
    "tags": "2017-08-01", "tagsList": "2019-06-04", "userData": "2021-01-01",
    "vmScaleSetName": "2017-12-01", "zone": "2017-12-01",
}  # every other field: 2017-04-02
_DISABLE_PASSWORD_SINCE = "2020-10-01"


def imds_document(cfg: EndpointConfig, api_version: str = IMDS_API_VERSIONS[-1], *,
                  extended: bool = False) -> dict[str, Any]:
    """The IMDS ``instance`` document as ``api_version`` has it: what cloud-init reads
    (osProfile, publicKeys, the network interface by MAC) and what waagent's IMDS client reads
    (location, vmId, publisher...).

    No marketplace image (empty publisher: waagent calls the image "custom"), no user data,
    no tags; a subscription of zeros and a resource group named after nothing real.
    """
    profile = {"adminUsername": cfg.username, "computerName": cfg.hostname}
    if api_version >= _DISABLE_PASSWORD_SINCE:
        profile["disablePasswordAuthentication"] = str(cfg.disable_password_auth).lower()
    compute: dict[str, Any] = {
        "azEnvironment": "AzurePublicCloud", "customData": "", "evictionPolicy": "",
        "isHostCompatibilityLayerVm": "false", "licenseType": "", "location": cfg.location,
        "name": cfg.vm_name, "offer": "", "osProfile": profile, "osType": "Linux",
        "placementGroupId": "", "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": "0", "platformUpdateDomain": "0", "priority": "",
        "provider": "Microsoft.Compute",
        "publicKeys": [{"keyData": key, "path": path} for path, key in cfg.ssh_keys],
        "publisher": "", "resourceGroupName": "vmimage-local",
        "resourceId": ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                       f"vmimage-local/providers/Microsoft.Compute/virtualMachines/{cfg.vm_name}"),
        "sku": "", "subscriptionId": "00000000-0000-0000-0000-000000000000", "tags": "",
        "tagsList": [], "userData": "", "version": "", "vmId": cfg.instance_id,
        "vmScaleSetName": "", "vmSize": "", "zone": "",
    }
    compute = {k: v for k, v in compute.items() if api_version >= _COMPUTE_SINCE.get(k, "2017-04-02")}
    document: dict[str, Any] = {"compute": compute, "network": _imds_network(cfg)}
    if extended:
        document["extended"] = {"compute": {"ppsType": "None"}}  # not a pre-provisioned VM
    return document


def _imds_network(cfg: EndpointConfig) -> dict[str, Any]:
    subnet = ipaddress.ip_network(f"{cfg.guest_ip}/{cfg.guest_prefix}", strict=False)
    mac = re.sub(r"[:-]", "", cfg.guest_mac).upper()  # Azure's form: 000D3A0AB1C2
    return {"interface": [{
        "ipv4": {"ipAddress": [{"privateIpAddress": cfg.guest_ip, "publicIpAddress": ""}],
                 "subnet": [{"address": str(subnet.network_address), "prefix": str(cfg.guest_prefix)}]},
        "ipv6": {"ipAddress": []},
        "macAddress": mac,
    }]}
