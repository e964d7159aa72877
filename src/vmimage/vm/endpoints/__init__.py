"""Azure's first-boot endpoints for a local VM: the WireServer and the Instance Metadata Service.

An image deployed on Azure learns who it is and says that it is up through two HTTP services
on fixed addresses: the WireServer (``168.63.129.16:80``), where waagent and cloud-init fetch
the goal state and post the health report ("Ready" ends provisioning), and IMDS
(``169.254.169.254:80``). A VM booted under qemu has neither, so the agent would retry for an
hour and the image could never be judged on what matters most: does it report Ready?

This package serves both, from one :class:`EndpointConfig`, with the documents that waagent
2.7.3 and cloud-init read (docs: ``provisioning-protocol.md`` §2, §3, §6): versions, a goal
state without certificates and without extensions, HostingEnvironmentConfig and SharedConfig,
the health and telemetry posts, and IMDS ``instance``, ``instance/compute`` and ``versions``
with Azure's rules for the ``Metadata`` header and ``api-version``. Every request becomes one
JSON line of a log that :func:`read_log`, :func:`health_reports` and
:func:`provisioning_state` read back: the verdict comes from what the guest did, not from
anything the guest says about itself elsewhere.

Listen on :data:`AZURE_ADDRESSES`, the HostGAPlugin's port 32526 included: every path of it
is answered 404 ("FastTrack not supported"), which waagent takes in its stride, whereas a
refused connection there makes Debian 12's waagent 2.7.3 fail goal state detection for ever
(its error path calls ``traceback.format_exception(etype=...)``, gone since Python 3.10).

The guest is untrusted: bodies are bounded (413 over 1 MiB), XML with a DOCTYPE or that does
not parse is answered 400 and recorded as malformed, and the log keeps only chosen headers,
never a body, and masks password-like values.

Run as ``python -m vmimage.vm.endpoints --config FILE.json --log FILE --listen HOST:PORT
[--listen ...] [--ready-fd N]`` (inside the VM's network namespace, for instance): once every
address is bound, one line ``ready HOST:PORT ...`` (the bound addresses) goes to the ready
fd; SIGTERM or SIGINT ends it with status 0.

The modules, each importing only those before it: :mod:`.config` (who the VM is, Azure's
addresses and versions), :mod:`.documents` (what is served), :mod:`.reports` (what the guest
posts), :mod:`.log` (the request log and the verdict read from it), :mod:`.app` (which answer
each request gets), :mod:`.server` (the HTTP servers, :class:`Endpoints`) and :mod:`.run` (the
process's entry point). Every public name is here too: callers import this package only.
"""

from __future__ import annotations

from vmimage.vm.endpoints.config import (
    AZURE_ADDRESSES,
    HOSTPLUGIN_PORT,
    IMDS_API_VERSIONS,
    IMDS_IP,
    WIRE_PROTOCOL,
    WIRE_SUPPORTED,
    WIRESERVER_IP,
    EndpointConfig,
    load_config,
)
from vmimage.vm.endpoints.documents import (
    config_url,
    full_config_xml,
    goal_state_xml,
    hosting_env_xml,
    imds_document,
    shared_config_xml,
    versions_xml,
)
from vmimage.vm.endpoints.log import (
    MAX_LOG,
    MAX_LOG_HARD,
    Kind,
    ProvisioningState,
    Request,
    health_reports,
    provisioning_state,
    read_log,
)
from vmimage.vm.endpoints.reports import HealthReport, Telemetry, parse_health, parse_telemetry
from vmimage.vm.endpoints.run import main, parse_listen
from vmimage.vm.endpoints.server import MAX_BODY, Endpoints

__all__ = [
    "AZURE_ADDRESSES", "HOSTPLUGIN_PORT", "IMDS_API_VERSIONS", "IMDS_IP", "MAX_BODY", "MAX_LOG",
    "MAX_LOG_HARD", "WIRESERVER_IP", "WIRE_PROTOCOL", "WIRE_SUPPORTED", "EndpointConfig",
    "Endpoints", "HealthReport", "Kind", "ProvisioningState", "Request", "Telemetry", "config_url",
    "full_config_xml", "goal_state_xml", "health_reports", "hosting_env_xml", "imds_document",
    "load_config", "main", "parse_health", "parse_listen", "parse_telemetry", "provisioning_state",
    "read_log", "shared_config_xml", "versions_xml",
]
