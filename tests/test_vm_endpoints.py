"""The WireServer and IMDS emulation (``vmimage.vm.endpoints``), against real clients.

The main oracle is the Azure Linux agent itself: Debian 12's waagent 2.7.3 from the cached
compliant tree (``tests.imagebuild.compliant_tree()``), run unmodified by the host's
``/usr/bin/python3`` (Debian 12's 3.11, as in the image) with the tree's dist-packages first on
``sys.path``, its lib directory in a temporary directory. Two set-ups:

- loopback: our server on 127.0.0.1:PORT and the agent's ``WireProtocol("127.0.0.1:PORT")``
  (FastTrack off, or the agent would ask for "127.0.0.1:PORT:32526"), its IMDS client's fixed
  address pointed at the same port;
- namespace: the entry point in a new network namespace (``unshare --net``) on the real
  addresses 168.63.129.16:80, :32526 and 169.254.169.254:80, with the host route to the
  WireServer that Azure's DHCP leaves behind; the agent runs there (``nsenter``) with every
  default and takes the daemon's own path: route check, ``get_protocol()``, the provisioning
  handler's ``report_not_ready``/``report_ready``, then the IMDS calls of its telemetry and
  health monitor.

urllib and raw sockets play the rest: IMDS as cloud-init asks it, malformed and oversized
requests, passwords that must not reach the log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import imagebuild as ib
from vmimage.errors import InputError
from vmimage.vm import endpoints as ep
from vmimage.vm.endpoints import EndpointConfig, Endpoints

CONTAINER = "6c1e4f4b-9a0d-4b7e-8f3a-2d5c7e9b1a40"
INSTANCE = "2f8a6d3c-5b1e-4c9a-a7d2-0e4f6b8c1d93"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk1b2lR9wq3f0Zt5Xn8mJ4cV7pL2sD6aE0uY9rT3kQx user@laptop"
CONFIG = EndpointConfig(
    vm_name="imgtest", container_id=CONTAINER, instance_id=INSTANCE, hostname="imgtest-vm",
    username="azureuser", guest_ip="10.0.2.15",
    ssh_keys=(("/home/azureuser/.ssh/authorized_keys", KEY),))
SECRET = "Hunter2-Sekr1t"
HOST_PYTHON = "/usr/bin/python3"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Our endpoints on 127.0.0.1:PORT: the base URL and the log."""
    log = tmp_path / "requests.jsonl"
    with Endpoints(CONFIG, log) as endpoints:
        host, port = endpoints.listen("127.0.0.1", 0)
        yield f"http://{host}:{port}", log


def http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, bytes]:
    """Status and body, error statuses included."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def raw(base: str, request: bytes) -> bytes:
    """Send bytes as they are; the whole answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def health_xml(state: str, substatus: str | None = None, description: str | None = None, *,
               container: str = CONTAINER, instance: str = CONFIG.role_instance_id) -> bytes:
    """A health report as cloud-init writes it (indented, whitespace around the values)."""
    details = (f"<Details>\n  <SubStatus>{substatus}</SubStatus>\n"
               f"  <Description>{description}</Description>\n</Details>") if substatus else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <GoalStateIncarnation>1</GoalStateIncarnation>
  <Container>
    <ContainerId>{container}</ContainerId>
    <RoleInstanceList>
      <Role>
        <InstanceId>{instance}</InstanceId>
        <Health>
          <State>{state}</State>
          {details}
        </Health>
      </Role>
    </RoleInstanceList>
  </Container>
</Health>
""".encode()


def post_health(base: str, body: bytes) -> int:
    return http(f"{base}/machine?comp=health", data=body,
                headers={"Content-Type": "text/xml;charset=utf-8"})[0]


def imds(base: str, query: str, metadata: str | None = "true", path: str = "instance") -> tuple[int, dict]:
    headers = {"Metadata": metadata} if metadata is not None else {}
    status, body = http(f"{base}/metadata/{path}{query}", headers=headers)
    return status, json.loads(body)


def kinds(log: Path) -> list[tuple[str, str, int]]:
    return [(r.method, r.kind, r.status) for r in ep.read_log(log)]


# --- the WireServer documents -----------------------------------------------------------------


def test_versions_and_goal_state_name_what_the_agent_needs(server: tuple[str, Path]) -> None:
    base, log = server
    status, body = http(f"{base}/?comp=versions")
    versions = ET.fromstring(body)
    assert status == 200
    assert versions.findtext("Preferred/Version") == "2012-11-30"
    assert [v.text for v in versions.findall("Supported/Version")] == list(ep.WIRE_SUPPORTED)

    status, body = http(f"{base}/machine/?comp=goalstate",
                        headers={"x-ms-agent-name": "WALinuxAgent", "x-ms-version": "2012-11-30"})
    goal = ET.fromstring(body)
    assert status == 200
    assert goal.findtext("Incarnation") == "1"
    assert goal.findtext("Machine/ExpectedState") == "Started"
    assert goal.findtext("Container/ContainerId") == CONTAINER
    instance = goal.find("Container/RoleInstanceList/RoleInstance")
    assert instance is not None
    assert instance.findtext("InstanceId") == f"{INSTANCE}._imgtest"
    assert instance.findtext("State") == "Started"
    configuration = instance.find("Configuration")
    assert configuration is not None
    assert [c.tag for c in configuration] == ["HostingEnvironmentConfig", "SharedConfig", "FullConfig",
                                              "ConfigName"]  # no Certificates, no ExtensionsConfig
    for element in list(configuration)[:3]:
        url = element.text or ""
        assert url.startswith(f"{base}/machine/{CONTAINER}/")  # where the client reached us
        status, body = http(url, headers={"x-ms-version": "2012-11-30"})
        assert status == 200
        document = ET.fromstring(body)
        assert document.tag == element.tag
    hosting = ET.fromstring(http(configuration.findtext("HostingEnvironmentConfig") or "")[1])
    assert hosting.find("Incarnation").get("instance") == "_imgtest"  # type: ignore[union-attr]
    assert hosting.find("Role").get("name") == "_imgtest"  # type: ignore[union-attr]
    assert hosting.find("Deployment").get("name") == CONFIG.deployment_name  # type: ignore[union-attr]
    assert kinds(log) == [("GET", "versions", 200), ("GET", "goalstate", 200), ("GET", "hosting-env", 200),
                          ("GET", "shared-config", 200), ("GET", "full-config", 200),
                          ("GET", "hosting-env", 200)]
    goal_request = ep.read_log(log)[1]
    assert goal_request.headers["x-ms-agent-name"] == "WALinuxAgent"
    assert goal_request.server == base.removeprefix("http://")


def test_goal_state_urls_fall_back_to_the_wireserver_address(server: tuple[str, Path]) -> None:
    base, _ = server
    for request in (b"GET /machine/?comp=goalstate HTTP/1.0\r\n\r\n",  # no Host header
                    b'GET /machine/?comp=goalstate HTTP/1.0\r\nHost: x"><evil/>\r\n\r\n'):
        answer = raw(base, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        url = ET.fromstring(body).findtext(".//HostingEnvironmentConfig") or ""
        assert url.startswith("http://168.63.129.16:80/machine/")


def test_wrong_container_and_unknown_paths_are_404_and_logged(server: tuple[str, Path]) -> None:
    base, log = server
    other = "00000000-0000-0000-0000-000000000001"
    assert http(f"{base}/machine/{other}/x?comp=config&type=sharedConfig")[0] == 404
    assert http(f"{base}/nothing/here")[0] == 404
    assert http(f"{base}/machine?comp=roleProperties", data=b"<RoleProperties/>")[0] == 404
    assert http(f"{base}/machine/?comp=goalstate", data=b"", method="PUT")[0] == 404
    assert http(f"{base}/vmSettings")[0] == 404  # the HostGAPlugin without FastTrack
    assert http(f"{base}/machine/?comp=goalstate", method="BREW")[0] == 501  # the base class's refusal
    assert b"Error code: 400" in raw(base, b"GARBAGE\r\n\r\n")  # not even a status line
    assert kinds(log) == [("GET", "unknown", 404), ("GET", "unknown", 404), ("POST", "unknown", 404),
                          ("PUT", "unknown", 404), ("GET", "hostplugin", 404), ("BREW", "unknown", 501),
                          ("", "unknown", 400)]
    assert ep.read_log(log)[2].body_bytes == len(b"<RoleProperties/>")
    assert ep.provisioning_state(log).describe() == (
        "the guest never reported health (it reached: unknown, hostplugin)")


# --- health and telemetry posts ---------------------------------------------------------------


def test_provisioning_state_follows_the_health_posts(server: tuple[str, Path]) -> None:
    base, log = server
    state = ep.provisioning_state(log)
    assert (state.state, state.touched, state.requests) == ("silent", (), 0)
    assert state.describe() == "no request from the guest reached the WireServer or IMDS"
    http(f"{base}/?comp=versions")
    http(f"{base}/machine/?comp=goalstate")
    assert ep.provisioning_state(log).touched == ("versions", "goalstate")
    assert post_health(base, health_xml("NotReady", "Provisioning", "Starting")) == 200
    assert post_health(base, health_xml("NotReady", "ProvisioningFailed", "useradd failed")) == 200
    state = ep.provisioning_state(log)
    assert (state.state, state.substatus, state.description) == ("not-ready", "ProvisioningFailed",
                                                                 "useradd failed")
    assert state.describe() == "the guest reported NotReady (ProvisioningFailed: useradd failed)"
    assert post_health(base, health_xml("Ready")) == 200
    state = ep.provisioning_state(log)
    reports = ep.health_reports(log)
    assert state.state == "ready"
    assert state.time == reports[2].time
    assert [(h.state, h.substatus, h.matches) for h in reports] == [
        ("NotReady", "Provisioning", True), ("NotReady", "ProvisioningFailed", True), ("Ready", None, True)]
    assert reports[0].incarnation == "1" and reports[0].instance_id == f"{INSTANCE}._imgtest"


def test_a_report_for_another_goal_state_is_not_ready(server: tuple[str, Path]) -> None:
    base, log = server
    assert post_health(base, health_xml("Ready", container="00000000-0000-0000-0000-00000000000f")) == 200
    assert post_health(base, health_xml("Ready", instance="someone-else")) == 200
    state = ep.provisioning_state(log)
    assert state.state == "not-ready"
    assert state.description == "every health report named another container or role instance"
    assert [h.matches for h in ep.health_reports(log)] == [False, False]


@pytest.mark.parametrize("body", [
    b"not xml at all",
    b"<Health><Container>",
    b"<Other/>",
    health_xml("Sleeping"),
    health_xml("Ready").replace(b"<InstanceId>", b"<Instance>").replace(b"</InstanceId>", b"</Instance>"),
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    b"<Health>&b;</Health>",
    "<Health>\udcff</Health>".encode("utf-8", "surrogateescape"),
])
def test_malformed_health_is_400_and_recorded(server: tuple[str, Path], body: bytes) -> None:
    base, log = server
    assert post_health(base, body) == 400
    (request,) = ep.read_log(log)
    assert (request.kind, request.status, request.note) == ("health", 400, "malformed")
    assert request.health is None
    assert ep.health_reports(log) == []
    assert ep.provisioning_state(log).state == "silent"
    assert http(f"{base}/?comp=versions")[0] == 200  # still serving


def test_telemetry_is_counted_not_kept(server: tuple[str, Path]) -> None:
    base, log = server
    body = ('<?xml version="1.0"?><TelemetryData version="1.0"><Provider id="69B669B9">'
            f'<Event id="1"><![CDATA[<Param Name="Message" Value="{SECRET}" T="mt:wstr" />]]></Event>'
            '<Event id="7"><![CDATA[]]></Event></Provider></TelemetryData>').encode()
    assert http(f"{base}/machine?comp=telemetrydata", data=body)[0] == 200
    assert http(f"{base}/machine?comp=telemetrydata", data=b"<TelemetryData>")[0] == 400
    first, second = ep.read_log(log)
    assert first.telemetry == ep.Telemetry(providers=("69B669B9",), events=2)
    assert first.body_bytes == len(body)
    assert (second.note, second.telemetry) == ("malformed", None)
    assert SECRET not in log.read_text()


def test_bodies_over_one_mib_are_refused_unread(server: tuple[str, Path]) -> None:
    base, log = server
    head = (b"POST /machine?comp=health HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\n\r\n" % (ep.MAX_BODY + 1))
    assert raw(base, head + b"<Health>").startswith(b"HTTP/1.1 413")
    chunked = b"POST /machine?comp=health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert raw(base, chunked).startswith(b"HTTP/1.1 411")
    assert post_health(base, b" " * ep.MAX_BODY) == 400  # exactly the limit: read, and malformed
    assert [(r.status, r.note) for r in ep.read_log(log)] == [(413, "too-large"), (411, "chunked"),
                                                              (400, "malformed")]


def test_the_log_never_holds_a_password(server: tuple[str, Path]) -> None:
    base, log = server
    http(f"{base}/machine/?comp=goalstate",
         headers={"Authorization": f"Basic {SECRET}", "Cookie": f"s={SECRET}", "X-Password": SECRET,
                  "x-ms-guest-agent-public-x509-cert": SECRET})
    http(f"{base}/?comp=versions&password={SECRET}&sig={SECRET}&Token={SECRET}")
    http(f"{base}/nowhere", data=f"password={SECRET}".encode())
    post_health(base, health_xml("NotReady", "ProvisioningFailed", f"chpasswd: password={SECRET} rejected"))
    imds(base, f"?api-version=2021-08-01&client_secret={SECRET}")
    text = log.read_text()
    assert SECRET not in text
    assert "authorization" not in text.lower() and "cookie" not in text.lower()
    assert len(ep.read_log(log)) == 5
    assert ep.health_reports(log)[0].description == "chpasswd: password=*** rejected"
    assert ep.read_log(log)[1].path == "/?comp=versions&password=***&sig=***&Token=***"


def test_read_log_skips_partial_and_foreign_lines(server: tuple[str, Path]) -> None:
    base, log = server
    post_health(base, health_xml("Ready"))
    with log.open("a") as fh:
        fh.write('{"event": "log-full"}\n["not", "a", "request"]\n{"kind": "health", "ts": "x"}\n'
                 '{"time": "2024-01-01T00:00:00Z", "ts": 1, "cli')
    assert [r.kind for r in ep.read_log(log)] == ["health"]
    assert ep.provisioning_state(log).state == "ready"
    assert ep.read_log(log.with_name("missing.jsonl")) == []


def test_a_full_log_keeps_only_health_posts(server: tuple[str, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    base, log = server
    monkeypatch.setattr(ep.log, "MAX_LOG", 1500)
    for _ in range(8):
        http(f"{base}/machine/?comp=goalstate")
    assert post_health(base, health_xml("Ready")) == 200
    lines = log.read_text().splitlines()
    assert sum('"event": "log-full"' in line for line in lines) == 1
    assert len(ep.read_log(log)) < 8 and ep.read_log(log)[-1].kind == "health"
    assert ep.provisioning_state(log).state == "ready"


def test_keep_alive_connections_log_every_request(server: tuple[str, Path]) -> None:
    base, log = server
    two = (b"GET /?comp=versions HTTP/1.1\r\nHost: h\r\n\r\n"
           b"GET /?comp=versions HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert raw(base, two).count(b"HTTP/1.1 200") == 2
    bad_second = b"GET /?comp=versions HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/2.0\r\n\r\n"
    raw(base, bad_second)
    assert [(r.kind, r.status) for r in ep.read_log(log)] == [("versions", 200)] * 3 + [("unknown", 505)]


def test_parallel_requests_give_whole_log_lines(server: tuple[str, Path]) -> None:
    base, log = server
    threads = [threading.Thread(target=http, args=(f"{base}/machine/?comp=goalstate",)) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = log.read_text().splitlines()
    assert len(lines) == 24 and all(json.loads(line)["status"] == 200 for line in lines)


# --- IMDS -------------------------------------------------------------------------------------


def test_imds_requires_the_metadata_header(server: tuple[str, Path]) -> None:
    base, log = server
    for metadata in (None, "false", "yes"):
        status, body = imds(base, "?api-version=2021-08-01", metadata)
        assert (status, body) == (400, {"error": "Bad request. Required metadata header not specified"})
    for metadata in ("true", "True", " TRUE "):
        assert imds(base, "?api-version=2021-08-01", metadata)[0] == 200
    status, _ = http(f"{base}/metadata/instance?api-version=2021-08-01",
                     headers={"Metadata": "true", "X-Forwarded-For": "10.0.0.1"})
    assert status == 400
    assert [r.note for r in ep.read_log(log)] == ["no-metadata-header"] * 3 + [None] * 3 + ["forwarded"]


def test_imds_api_versions_as_azure_answers_them(server: tuple[str, Path]) -> None:
    base, log = server
    status, body = imds(base, "")
    assert status == 400 and body["error"].startswith("Bad request. api-version was not specified")
    status, body = imds(base, "?api-version=2099-01-01")
    assert status == 400
    assert body == {"error": "Bad request. api-version is invalid or was not specified in the request. "
                             "For more information refer to aka.ms/azureimds",
                    "newest-versions": ["2023-07-01", "2021-12-13", "2021-11-15"]}
    assert imds(base, "", path="versions") == (200, {"apiVersions": list(ep.IMDS_API_VERSIONS)})
    assert imds(base, "?api-version=2021-08-01", path="instance/compute/vmId")[0] == 404
    assert imds(base, "?api-version=2021-08-01&format=text")[0] == 400
    assert [r.note for r in ep.read_log(log)] == ["no-api-version", "bad-api-version", None, None,
                                                  "bad-format"]


def test_imds_instance_as_cloud_init_reads_it(server: tuple[str, Path]) -> None:
    base, _ = server
    status, document = imds(base, "?api-version=2021-08-01&extended=true")  # cloud-init's first try
    assert status == 200
    compute = document["compute"]
    assert compute["osProfile"] == {"adminUsername": "azureuser", "computerName": "imgtest-vm",
                                    "disablePasswordAuthentication": "true"}
    assert compute["publicKeys"] == [{"keyData": KEY, "path": "/home/azureuser/.ssh/authorized_keys"}]
    assert (compute["name"], compute["osType"], compute["location"], compute["vmId"]) == (
        "imgtest", "Linux", "local", INSTANCE)
    assert document["extended"] == {"compute": {"ppsType": "None"}}
    interface = document["network"]["interface"][0]
    assert interface["macAddress"] == "525400123456"
    assert interface["ipv4"]["ipAddress"][0]["privateIpAddress"] == "10.0.2.15"
    assert interface["ipv4"]["subnet"][0] == {"address": "10.0.2.0", "prefix": "24"}
    status, only_compute = imds(base, "?api-version=2021-08-01", path="instance/compute/")
    assert (status, only_compute) == (200, compute)
    assert imds(base, "?api-version=2021-08-01", path="instance/network")[1] == document["network"]


def test_imds_fallback_to_2019_06_01_like_cloud_init(tmp_path: Path) -> None:
    """An IMDS without 2021-08-01 answers 400; cloud-init then asks 2019-06-01, which has the
    keys but not yet osProfile (2020-07-15)."""
    older = dataclasses.replace(CONFIG, imds_versions=("2018-02-01", "2019-06-01"))
    with Endpoints(older, tmp_path / "log") as endpoints:
        host, port = endpoints.listen("127.0.0.1", 0)
        base = f"http://{host}:{port}"
        status, body = imds(base, "?api-version=2021-08-01&extended=true")
        assert status == 400 and body["newest-versions"] == ["2019-06-01", "2018-02-01"]
        status, document = imds(base, "?api-version=2019-06-01")
    assert status == 200
    assert "osProfile" not in document["compute"] and "extended" not in document
    assert document["compute"]["publicKeys"][0]["keyData"] == KEY


def test_imds_fields_follow_the_api_version() -> None:
    oldest = ep.imds_document(CONFIG, "2017-04-02")["compute"]
    assert "publicKeys" not in oldest and "subscriptionId" not in oldest and "vmId" in oldest
    profile = ep.imds_document(CONFIG, "2020-07-15")["compute"]["osProfile"]
    assert "disablePasswordAuthentication" not in profile
    newest = ep.imds_document(CONFIG)["compute"]
    assert newest["osProfile"]["disablePasswordAuthentication"] == "true"
    assert "userData" in newest and "evictionPolicy" in newest


# --- configuration and entry point ------------------------------------------------------------


def test_config_round_trips_and_names_its_problems(tmp_path: Path) -> None:
    assert EndpointConfig.from_json(json.loads(json.dumps(CONFIG.to_json()))) == CONFIG
    pairs = {**CONFIG.to_json(), "ssh_keys": [["/root/.ssh/authorized_keys", KEY]]}
    assert EndpointConfig.from_json(pairs).ssh_keys == (("/root/.ssh/authorized_keys", KEY),)
    for change, problem in [
        ({"container_id": "not-a-uuid"}, "container_id 'not-a-uuid' is not a UUID"),
        ({"vm_name": "bad name"}, "vm_name 'bad name'"),
        ({"incarnation": True}, "incarnation: expected int, got bool"),
        ({"guest_ip": "10.0.2"}, "guest_ip '10.0.2' is not an IPv4 address"),
        ({"colour": "blue"}, "unknown key 'colour'"),
        ({"ssh_keys": [{"path": "relative", "keyData": KEY}]}, "ssh key path 'relative'"),
        ({"ssh_keys": [{"path": "/k", "keyData": "a\nb"}]}, "an ssh key must be one non-empty line"),
    ]:
        with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(")):
            EndpointConfig.from_json({**CONFIG.to_json(), **change})
    missing = CONFIG.to_json()
    del missing["username"]
    with pytest.raises(ValueError, match=r"^missing key 'username'$"):
        EndpointConfig.from_json(missing)
    path = tmp_path / "config.json"
    path.write_text("{")
    with pytest.raises(InputError, match=r"config\.json: not JSON"):
        ep.load_config(path)


def test_adopted_socket_is_served(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    with Endpoints(CONFIG, tmp_path / "log") as endpoints:
        host, port = endpoints.adopt(sock)
        assert endpoints.addresses == [(host, port)] == [sock.getsockname()]
        assert http(f"http://{host}:{port}/?comp=versions")[0] == 200
    assert sock.fileno() == -1  # closed with the server


def read_ready(fd: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """The entry point's ready line (empty if it ended first)."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail("the endpoints never said they were ready")
    return os.read(fd, 4096).decode()


@contextlib.contextmanager
def entry_point(args: list[str], *, prefix: tuple[str, ...] = ()
                ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m vmimage.vm.endpoints ARGS --ready-fd N``: the process and its ready line.
    Killed at the end if still running."""
    r, w = os.pipe()
    cmd = [*prefix, sys.executable, "-m", "vmimage.vm.endpoints", *args, "--ready-fd", str(w)]
    proc = subprocess.Popen(cmd, pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    os.close(w)
    try:
        yield proc, read_ready(r, proc)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_entry_point_serves_until_signalled(tmp_path: Path, sig: signal.Signals) -> None:
    config, log = tmp_path / "config.json", tmp_path / "requests.jsonl"
    config.write_text(json.dumps(CONFIG.to_json()))
    args = ["--config", str(config), "--log", str(log), "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"]
    with entry_point(args) as (proc, ready):
        words = ready.split()
        assert words[0] == "ready" and len(words) == 3 and ready.endswith("\n")
        for address in words[1:]:
            assert http(f"http://{address}/?comp=versions")[0] == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    assert [r.server for r in ep.read_log(log)] == words[1:]
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_entry_point_refuses_bad_input(tmp_path: Path) -> None:
    config, log = tmp_path / "config.json", tmp_path / "log"
    config.write_text(json.dumps({**CONFIG.to_json(), "guest_ip": "nowhere"}))
    base = [sys.executable, "-m", "vmimage.vm.endpoints", "--log", str(log)]
    bad = subprocess.run([*base, "--config", str(config), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "guest_ip 'nowhere' is not an IPv4 address" in bad.stderr
    config.write_text(json.dumps(CONFIG.to_json()))
    name = subprocess.run([*base, "--config", str(config), "--listen", "localhost:80"],
                          capture_output=True, text=True, timeout=30)
    assert name.returncode == 2 and "--listen 'localhost:80': not IP:PORT" in name.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([*base, "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=30)
    assert busy.returncode == 1 and "cannot listen" in busy.stderr


# --- the real agent ---------------------------------------------------------------------------


AGENT_PRELUDE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import azurelinuxagent.common.conf as conf
import azurelinuxagent.common.logger as logger
logger.add_logger_appender(logger.AppenderType.STDOUT, logger.LogLevel.INFO)
conf.load_conf_from_file(sys.argv[2])
def result(**values):
    print("RESULT " + json.dumps(values))
"""


@pytest.fixture(scope="module")
def agent_site() -> Path:
    """Debian 12's waagent 2.7.3 (the tree's python package), for the host's python3."""
    if not Path(HOST_PYTHON).exists():
        pytest.skip("no /usr/bin/python3 to run the agent with")
    site = ib.compliant_tree() / "usr/lib/python3/dist-packages"
    assert (site / "azurelinuxagent/common/protocol/wire.py").is_file()
    return site


def run_agent(site: Path, tmp: Path, script: str, *args: str, conf: str = "",
              prefix: tuple[str, ...] = ()) -> tuple[dict, str]:
    """Run ``script`` with the agent's code (lib dir in ``tmp``); its RESULT and its output."""
    (tmp / "lib").mkdir(exist_ok=True)
    conf_file = tmp / "waagent.conf"
    conf_file.write_text(f"Lib.Dir={tmp / 'lib'}\n{conf}")
    done = subprocess.run([*prefix, HOST_PYTHON, "-I", "-c", AGENT_PRELUDE + script, str(site),
                           str(conf_file), *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        pytest.fail(f"the agent failed ({done.returncode}):\n{output[-4000:]}")
    return json.loads(lines[-1].removeprefix("RESULT ")), output


LOOPBACK_SCRIPT = """
from azurelinuxagent.common.protocol import imds
from azurelinuxagent.common.protocol.restapi import ProvisionStatus
from azurelinuxagent.common.protocol.wire import WireProtocol
from azurelinuxagent.common.telemetryevent import TelemetryEvent, TelemetryEventParam
endpoint = sys.argv[3]
protocol = WireProtocol(endpoint)
protocol.detect()
protocol.report_provision_status(ProvisionStatus(status="NotReady", subStatus="Provisioning",
                                                 description="Starting"))
protocol.report_provision_status(ProvisionStatus(status="Ready"))
vminfo = protocol.get_vminfo()
event = TelemetryEvent(1, "69B669B9-4AF8-4C50-BDC4-6006FA76E975")
event.parameters.append(TelemetryEventParam("Operation", "Provision"))
protocol.report_event(iter([event]))
imds.IMDS_ENDPOINT = endpoint  # the client's fixed 169.254.169.254, here our port
client = imds.get_imds_client(endpoint)
compute = client.get_compute()
result(vm=vminfo.vmName, tenant=vminfo.tenantName, role=vminfo.roleName,
       instance=vminfo.roleInstanceName, incarnation=protocol.get_incarnation(),
       extensions=len(protocol.get_extensions_goal_state().extensions),
       location=compute.location, vm_id=compute.vmId, os_type=compute.osType,
       origin=compute.image_origin, valid=list(client.validate()))
"""


@pytest.mark.slow
def test_agent_wire_protocol_on_loopback(agent_site: Path, server: tuple[str, Path], tmp_path: Path) -> None:
    base, log = server
    endpoint = base.removeprefix("http://")
    result, output = run_agent(agent_site, tmp_path, LOOPBACK_SCRIPT, endpoint,
                               conf="Debug.EnableFastTrack=n\n")
    assert result == {"vm": "_imgtest", "tenant": CONFIG.deployment_name, "role": "_imgtest",
                      "instance": f"{INSTANCE}._imgtest", "incarnation": "1", "extensions": 0,
                      "location": "local", "vm_id": INSTANCE, "os_type": "Linux", "origin": 1,
                      "valid": [True, ""]}
    assert "Unknown property" not in output  # 2018-02-01 has exactly the fields the agent knows
    requests = ep.read_log(log)
    assert [(r.method, r.path.split("?")[0], r.kind, r.status) for r in requests] == [
        ("GET", "/", "versions", 200),
        ("GET", "/machine/", "goalstate", 200),
        ("GET", f"/machine/{CONTAINER}/{INSTANCE}._imgtest", "hosting-env", 200),
        ("GET", f"/machine/{CONTAINER}/{INSTANCE}._imgtest", "shared-config", 200),
        ("POST", "/machine", "health", 200),
        ("POST", "/machine", "health", 200),
        ("POST", "/machine", "telemetry", 200),
        ("GET", "/metadata/instance/compute", "imds-compute", 200),
        ("GET", "/metadata/instance", "imds-instance", 200),
    ]
    assert requests[1].headers == {"host": endpoint, "user-agent": "WALinuxAgent/2.7.3.0",
                                   "x-ms-agent-name": "WALinuxAgent", "x-ms-version": "2012-11-30"}
    assert requests[4].headers["content-type"] == "text/xml;charset=utf-8"
    assert requests[6].telemetry == ep.Telemetry(("69B669B9-4AF8-4C50-BDC4-6006FA76E975",), 1)
    assert requests[7].path == "/metadata/instance/compute?api-version=2018-02-01"
    assert requests[7].headers["metadata"] == "True"
    assert [(h.state, h.substatus, h.description, h.incarnation, h.matches)
            for h in ep.health_reports(log)] == [("NotReady", "Provisioning", "Starting", "1", True),
                                                 ("Ready", None, None, "1", True)]
    assert ep.provisioning_state(log).state == "ready"
    saved = (tmp_path / "lib/GoalState.1.xml").read_text()
    assert saved == http(f"{base}/machine/?comp=goalstate")[1].decode()


NS_SETUP = ("ip link set lo up && ip addr add 168.63.129.16/32 dev lo && "
            "ip addr add 169.254.169.254/32 dev lo && ip route add 168.63.129.16/32 dev lo && "
            'exec "$@"')
AZURE_LISTEN = [f"{h}:{p}" for h, p in ep.AZURE_ADDRESSES]

DAEMON_SCRIPT = """
from azurelinuxagent.common.event import initialize_event_logger_vminfo_common_parameters
from azurelinuxagent.common.protocol.imds import get_imds_client
from azurelinuxagent.pa.provision.default import ProvisionHandler
handler = ProvisionHandler()
handler.protocol_util.clear_protocol()         # the daemon's first step
protocol = handler.protocol_util.get_protocol()  # provisioning: "Trigger protocol detection"
handler.report_not_ready("Provisioning", "Starting")
handler.report_ready()
initialize_event_logger_vminfo_common_parameters(protocol)  # the daemon, after provisioning
valid = get_imds_client(protocol.get_endpoint()).validate()  # the monitor's IMDS health check
result(endpoint=protocol.get_endpoint(), valid=list(valid))
"""

DETECT_SCRIPT = """
from azurelinuxagent.common.protocol.wire import WireProtocol
try:
    WireProtocol("168.63.129.16").detect()
    result(error=None)
except Exception as error:
    result(error=str(error))
"""


@pytest.fixture(scope="module")
def netns() -> None:
    probe = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                           capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no network namespace here: {probe.stderr.decode().strip()}")


@contextlib.contextmanager
def endpoints_in_namespace(tmp: Path, listen: list[str]
                           ) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """The entry point alone in a new network namespace where it owns Azure's addresses."""
    config, log = tmp / "config.json", tmp / "requests.jsonl"
    config.write_text(json.dumps(CONFIG.to_json()))
    args = ["--config", str(config), "--log", str(log)]
    for address in listen:
        args += ["--listen", address]
    with entry_point(args, prefix=("unshare", "--net", "--", "sh", "-c", NS_SETUP, "sh")) as (proc, ready):
        yield proc, ready, log


@pytest.mark.slow
@pytest.mark.usefixtures("netns")
def test_agent_provisions_against_the_entry_point_in_a_namespace(agent_site: Path, tmp_path: Path) -> None:
    with endpoints_in_namespace(tmp_path, AZURE_LISTEN) as (proc, ready, log):
        assert ready == "ready 168.63.129.16:80 168.63.129.16:32526 169.254.169.254:80\n"
        result, output = run_agent(agent_site, tmp_path, DAEMON_SCRIPT,
                                   prefix=("nsenter", f"--net=/proc/{proc.pid}/ns/net"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "Route to 168.63.129.16 exists" in output  # found as on Azure, not told
    assert result == {"endpoint": "168.63.129.16", "valid": [True, ""]}
    assert (tmp_path / "lib/WireServerEndpoint").read_text() == "168.63.129.16"
    wire, plugin, metadata = AZURE_LISTEN
    assert [(r.server, r.method, r.kind, r.status) for r in ep.read_log(log)] == [
        (wire, "GET", "versions", 200),
        (wire, "GET", "goalstate", 200),
        (wire, "GET", "goalstate", 200),  # again, for the host plugin's container id
        (plugin, "GET", "hostplugin", 404),  # vmSettings: FastTrack not supported
        (wire, "GET", "hosting-env", 200),
        (wire, "GET", "shared-config", 200),
        (wire, "POST", "health", 200),
        (wire, "POST", "health", 200),
        (metadata, "GET", "imds-compute", 200),
        (metadata, "GET", "imds-instance", 200),
    ]
    assert ep.read_log(log)[3].path == "/vmSettings"
    assert [(h.state, h.substatus, h.description) for h in ep.health_reports(log)] == [
        ("NotReady", "Provisioning", "Starting"), ("Ready", None, None)]
    state = ep.provisioning_state(log)
    assert state.state == "ready" and state.describe() == "the guest reported Ready"


@pytest.mark.slow
@pytest.mark.usefixtures("netns")
def test_agent_needs_the_host_plugin_port_to_answer(agent_site: Path, tmp_path: Path) -> None:
    """Why AZURE_ADDRESSES has :32526: a refused vmSettings request sends Debian 12's waagent
    into an error path that calls format_exception(etype=...), gone in Python 3.10, so goal
    state detection fails and the agent never reports."""
    with endpoints_in_namespace(tmp_path, ["168.63.129.16:80", "169.254.169.254:80"]) as (proc, _, log):
        result, _ = run_agent(agent_site, tmp_path, DETECT_SCRIPT,
                              prefix=("nsenter", f"--net=/proc/{proc.pid}/ns/net"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert "etype" in result["error"]
    state = ep.provisioning_state(log)
    assert (state.state, state.touched) == ("silent", ("versions", "goalstate"))
