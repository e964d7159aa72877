"""The GitHub Action (action.yml) and its script, run as CI would: without the Actions runtime.

``scripts/action/check.sh`` is given the environment the runner gives a composite step
(INPUT_*, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP, GITHUB_ACTION_PATH) and runs on the
compliant sample image and on copies with a violation injected. vmimage is installed from
this checkout into a fresh virtual environment by the script itself, once per test run: the
first test to need it installs it under a lock, the others (in any xdist worker) reuse it.

``action.yml`` and the workflow example are validated against SchemaStore's published
schemas (tests/data/schemas/), and their wiring is checked: every input reaches the script,
every output is one the script writes, every ``with:`` key is an input.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from html.parser import HTMLParser
from pathlib import Path

import defusedxml.ElementTree as ET
import jsonschema
import pytest
import yaml
from ruamel.yaml import YAML

from tests import imagebuild as ib

REPO = Path(__file__).resolve().parents[1]
ACTION = REPO / "action.yml"
CHECK_SH = REPO / "scripts/action/check.sh"
FINISH_SH = REPO / "scripts/action/finish.sh"
WORKFLOW = REPO / "examples/github/vmimage.yml"
PIPELINE = REPO / "examples/azure-pipelines/vmimage.yml"
SCHEMAS = Path(__file__).parent / "data" / "schemas"
REPORT_SCHEMA = REPO / "src/vmimage/schemas/report-v1.json"
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0-subset.schema.json"
REPORTS = ("vmimage.sarif", "vmimage.html", "vmimage.junit.xml", "vmimage.json")


def load_yaml12(path: Path):
    """YAML 1.2, as GitHub and Azure Pipelines read it (PyYAML would turn ``on:`` into True)."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def schema_errors(document, schema_file: str) -> list[str]:
    schema = json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return [f"{list(e.absolute_path)}: {e.message[:200]}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(document)]


def cli_flags(*command: str) -> set[str]:
    """The options ``vmimage COMMAND --help`` lists (long and short)."""
    env = {**os.environ, "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "vmimage", *command, "--help"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", proc.stdout)) - {"-", "--"}


def flags_in(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("-")}


# --------------------------------------------------------------------------------------------
# action.yml


@pytest.fixture(scope="module")
def action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def test_action_yml_is_valid_against_schemastore(action):
    assert schema_errors(action, "github-action.json") == []
    # The schema does reject a broken action: a run step without its shell.
    broken = copy.deepcopy(action)
    del broken["runs"]["steps"][1]["shell"]
    assert schema_errors(broken, "github-action.json")


def test_action_interface(action):
    inputs = action["inputs"]
    assert inputs["image"]["required"] is True
    defaults = {k: v.get("default") for k, v in inputs.items()}
    assert defaults == {"image": None, "profile": "azure-current", "role": "os-linux",
                        "fail-on": "fail", "waivers": "", "vmimage-version": "",
                        "sarif": "true", "artifact-name": "vmimage-report", "output-dir": ""}
    assert {"verdict", "exit-code", "sarif-file", "html-file"} <= set(action["outputs"])
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert uses["actions/setup-python"]["uses"].endswith("@v5")
    assert uses["actions/setup-python"]["with"]["update-environment"] is False
    sarif = uses["github/codeql-action/upload-sarif"]
    assert sarif["uses"].endswith("@v3") and sarif["with"]["category"] == "vmimage"
    assert uses["actions/upload-artifact"]["uses"].endswith("@v4")


def test_action_wiring(action):
    """Every input reaches the script, every output is written by it, and a failed check
    does not stop the uploads: the last step fails the job from the recorded exit code."""
    steps = action["runs"]["steps"]
    check = next(s for s in steps if s.get("id") == "check")
    assert check["continue-on-error"] is True
    assert "scripts/action/check.sh" in check["run"] and check["shell"] == "bash"
    env = check["env"]
    uploads = json.dumps([s for s in steps if s.get("uses", "").startswith(
        ("github/codeql-action/upload-sarif@", "actions/upload-artifact@"))])
    for name in action["inputs"]:
        key = "INPUT_" + name.upper().replace("-", "_")
        if name in ("sarif", "artifact-name"):  # the upload steps' own switches
            assert key not in env, key
            assert f"inputs.{name} != ''" in uploads or f"inputs.{name} == 'true'" in uploads
        else:
            assert env.get(key) == f"${{{{ inputs.{name} }}}}", key
    script = CHECK_SH.read_text(encoding="utf-8")
    read = set(re.findall(r"\$\{?(INPUT_[A-Z_]+)", script))
    assert read == {k for k in env if k.startswith("INPUT_")}
    written = set(re.findall(r"^\s*output ([a-z-]+) ", script, re.M))
    written |= set(re.findall(r'"([a-z]+-file)=\$', script))
    for name, out in action["outputs"].items():
        assert out["value"] == f"${{{{ steps.check.outputs.{name} }}}}"
        assert name in written, name
    for step in steps[steps.index(check) + 1:]:
        assert step["if"].startswith("${{ !cancelled()"), step["name"]
    last = steps[-1]
    assert "scripts/action/finish.sh" in last["run"]
    assert last["env"]["VMIMAGE_EXIT_CODE"] == "${{ steps.check.outputs.exit-code }}"


def test_action_script_uses_only_flags_the_cli_has():
    script = CHECK_SH.read_text(encoding="utf-8")
    args = re.search(r"^args=\(check (.*?)\)$", script, re.M | re.S)
    assert args, "the vmimage check command line in check.sh"
    used = flags_in(shlex.split(args[1].replace("\\\n", " ")))
    used |= flags_in(re.findall(r"args\+=\((--[\w-]+)", script))
    assert used == {"--profile", "--role", "--fail-on", "--output", "--waivers"}
    assert used <= cli_flags("check")


def test_scripts_pass_bash_n_and_shellcheck():
    for script in (CHECK_SH, FINISH_SH):
        assert os.access(script, os.X_OK), script
        proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", CHECK_SH, FINISH_SH], capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, proc.stdout


# --------------------------------------------------------------------------------------------
# The workflow example


def test_workflow_example_is_valid_and_uses_the_actions_inputs(action):
    workflow = load_yaml12(WORKFLOW)
    assert schema_errors(workflow, "github-workflow.json") == []
    broken = copy.deepcopy(workflow)
    del broken["jobs"]["image"]["runs-on"]  # a job must say where it runs
    assert schema_errors(broken, "github-workflow.json")

    job = workflow["jobs"]["image"]
    assert job["permissions"]["security-events"] == "write"  # upload-sarif needs it
    ours = [s for s in job["steps"] if s.get("uses", "").split("@")[0].endswith("/vmimage")]
    assert len(ours) == 1
    given = set(ours[0]["with"])
    assert given <= set(action["inputs"])
    assert {k for k, v in action["inputs"].items() if v.get("required")} <= given
    # Later steps read only outputs the action declares.
    text = WORKFLOW.read_text(encoding="utf-8")
    for name in re.findall(r"steps\.vmimage\.outputs\.([\w-]+)", text):
        assert name in action["outputs"], name
    # No secret is written into the workflow: it comes from the secrets context.
    assert "sig=" not in text.replace("sv=...&sig=...", "")
    upload = next(s for s in job["steps"] if s.get("name") == "Upload the VHD")
    assert upload["env"]["AZURE_STORAGE_SAS_TOKEN"] == "${{ secrets.AZURE_STORAGE_SAS_TOKEN }}"
    assert flags_in(shlex.split(upload["run"])[1:]) <= cli_flags("upload")


# --------------------------------------------------------------------------------------------
# The Azure Pipelines example


def _pipeline_commands(node) -> list[list[str]]:
    """Every ``vmimage`` command line in the ``bash:``/``script:`` steps, split as bash would."""
    commands = []
    for step in node.get("steps", []):
        body = step.get("bash") or step.get("script") or ""
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and Path(words[0]).name == "vmimage":
                commands.append(words)
    return commands


def test_azure_pipelines_example_parses_and_uses_real_flags():
    pipeline = load_yaml12(PIPELINE)
    names = {p["name"]: p for p in pipeline["parameters"]}
    assert {"image", "profile", "failOn"} <= set(names)
    assert names["failOn"]["values"] == ["fail", "warning"]
    commands = _pipeline_commands(pipeline)
    for command in commands:  # vmimage --version, vmimage check ...
        sub = [] if command[1].startswith("-") else [command[1]]
        assert flags_in(command[1:]) <= cli_flags(*sub), command
    checks = [c for c in commands if c[1] == "check"]
    assert len(checks) == 1
    used = flags_in(checks[0])
    assert {"--output", "--fail-on", "--profile"} <= used
    assert used <= cli_flags("check"), used - cli_flags("check")
    outputs = [checks[0][i + 1] for i, a in enumerate(checks[0]) if a == "--output"]
    assert any(o.endswith(".junit.xml") for o in outputs)
    assert any(o.endswith(".html") for o in outputs)
    publish = [s for s in pipeline["steps"] if s.get("task") == "PublishTestResults@2"]
    assert len(publish) == 1
    inputs = publish[0]["inputs"]
    assert inputs["testResultsFormat"] == "JUnit"
    assert inputs["testResultsFiles"].endswith("vmimage.junit.xml")
    assert publish[0]["condition"] == "succeededOrFailed()"  # published when the check fails
    artifacts = [s for s in pipeline["steps"] if "publish" in s]
    assert artifacts and artifacts[0]["condition"] == "succeededOrFailed()"


# --------------------------------------------------------------------------------------------
# check.sh on real images


def run_script(tmp: Path, image, *, venv: Path | None, extra: dict[str, str] | None = None,
               script: Path = CHECK_SH) -> tuple[subprocess.CompletedProcess[str], dict, str]:
    """Run the script with the environment a runner gives a composite step.

    Returns the process, the GITHUB_OUTPUT lines as a dict, and the step summary.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    out, summary, runner_temp = tmp / "github_output", tmp / "step_summary.md", tmp / "runner"
    out.write_text("")
    summary.write_text("")
    runner_temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INPUT_", "GITHUB_", "RUNNER_", "VMIMAGE_"))}
    env.update({"INPUT_IMAGE": str(image), "INPUT_PROFILE": "azure-current",
                "INPUT_ROLE": "os-linux", "INPUT_FAIL_ON": "fail", "INPUT_WAIVERS": "",
                "INPUT_VMIMAGE_VERSION": "", "INPUT_OUTPUT_DIR": "",
                "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
                "RUNNER_TEMP": str(runner_temp), "GITHUB_ACTION_PATH": str(REPO)})
    if venv is not None:
        env["VMIMAGE_VENV"] = str(venv)
    env.update(extra or {})
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, check=False, timeout=1800)
    lines = out.read_text().splitlines()
    outputs = dict(line.split("=", 1) for line in lines)
    assert len(outputs) == len(lines), lines  # every key once
    return proc, outputs, summary.read_text()


@pytest.fixture(scope="session")
def action_venv(tmp_path_factory: pytest.TempPathFactory, compliant_vhd: Path) -> dict:
    """The virtual environment check.sh makes, once per test run, by its own install path.

    The first worker to get here runs the script on the compliant image with a venv that
    does not exist yet; the script installs vmimage from this checkout (pip resolves the
    dependencies from the index). Its run is kept for the tests to look at.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this run
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
    home = base / f"action-venv-{run_id[:16]}"
    home.mkdir(exist_ok=True)
    venv, record = home / "venv", home / "install-run.json"
    with open(home / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not record.exists():
                proc, outputs, summary = run_script(home / "first-run", compliant_vhd, venv=venv)
                record.write_text(json.dumps({
                    "returncode": proc.returncode, "stdout": proc.stdout,
                    "stderr": proc.stderr, "outputs": outputs, "summary": summary,
                    "image": str(compliant_vhd)}))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    first = json.loads(record.read_text())
    assert first["returncode"] == 0, first["stdout"][-3000:] + first["stderr"][-3000:]
    return {"venv": venv, "first": first}


def test_script_installs_vmimage_and_passes_the_compliant_image(action_venv):
    first = action_venv["first"]
    venv = action_venv["venv"]
    # It went through the install path: a new venv, vmimage from this checkout.
    assert f"== Install vmimage (source:{REPO})" in first["stdout"]
    assert "reusing" not in first["stdout"]
    assert (venv / ".vmimage-action").read_text().strip() == f"source:{REPO}"
    assert re.search(r"^vmimage \d+\.\d+\.\d+", first["stdout"], re.M)
    proc = subprocess.run([venv / "bin/python", "-c", "import vmimage, sys; print(vmimage.__file__)"],
                          capture_output=True, text=True, check=True)
    assert str(venv) in proc.stdout  # installed into the venv, not the checkout
    # The outputs a runner would read.
    outputs = first["outputs"]
    report_dir = Path(outputs["report-dir"])
    assert outputs["verdict"] == "pass" and outputs["exit-code"] == "0"
    assert outputs["vmimage-path"] == str(venv / "bin/vmimage")
    assert {outputs[k] for k in ("sarif-file", "html-file", "junit-file", "json-file")} == {
        str(report_dir / name) for name in REPORTS}
    assert first["summary"].startswith("### vmimage check: pass\n")
    assert "PASSES vmimage's offline checks for azure-current" in first["summary"]
    assert "Profile azure-current, fail-on fail: exit 0, nothing at or above it." \
        in first["summary"]

    # The reports: each one parses and says what the JSON says.
    doc = json.loads((report_dir / "vmimage.json").read_text())
    jsonschema.validate(doc, json.loads(REPORT_SCHEMA.read_text()))
    assert doc["summary"]["verdict"] == "pass" and doc["target"]["path"] == first["image"]
    log = json.loads((report_dir / "vmimage.sarif").read_text())
    jsonschema.Draft7Validator(json.loads(SARIF_SCHEMA.read_text())).validate(log)
    assert log["runs"][0]["tool"]["driver"]["name"] == "vmimage"
    assert log["runs"][0]["properties"]["verdict"] == "pass"
    html = (report_dir / "vmimage.html").read_text()
    HTMLParser().feed(html)
    assert 'class="verdict ok">PASSES' in html
    junit = ET.fromstring((report_dir / "vmimage.junit.xml").read_bytes())
    assert len(junit.findall(".//testcase")) == doc["summary"]["total"]
    assert not junit.findall(".//failure")


def test_script_reuses_the_venv_and_fails_a_failing_image(action_venv, tmp_path):
    disk = ib.compliant_copy(tmp_path / "bad.raw")
    ib.put_file(disk.path, disk.root_offset, "/root/.bash_history", "sudo reboot\n", mode=0o600)
    vhd = ib.to_vhd(disk)
    disk.path.unlink()
    proc, outputs, summary = run_script(tmp_path / "run", vhd, venv=action_venv["venv"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "reusing" in proc.stdout
    assert outputs["verdict"] == "fail" and outputs["exit-code"] == "1"
    # The reports of a failing image are written all the same, for the uploads.
    for key in ("sarif-file", "html-file", "junit-file", "json-file"):
        assert Path(outputs[key]).stat().st_size > 0
    log = json.loads(Path(outputs["sarif-file"]).read_text())
    failed = {r["ruleId"] for r in log["runs"][0]["results"] if r["level"] == "error"}
    assert failed == {"LINUX-SHELL-HISTORY-EMPTY"}
    junit = ET.fromstring(Path(outputs["junit-file"]).read_bytes())
    assert [c.get("classname") for c in junit.iter("testcase")
            if c.find("failure") is not None] == ["LINUX-SHELL-HISTORY-EMPTY"]
    assert 'class="verdict ko">FAILS' in Path(outputs["html-file"]).read_text()
    assert summary.startswith("### vmimage check: fail\n")
    assert "fail-on fail: exit 1, the job fails" in summary
    assert "| `LINUX-SHELL-HISTORY-EMPTY` | fail |" in summary

    # The action's last step turns the recorded code into the job's result.
    fin = subprocess.run(["bash", FINISH_SH], capture_output=True, text=True, check=False,
                         env={**os.environ, "VMIMAGE_EXIT_CODE": outputs["exit-code"],
                              "VMIMAGE_VERDICT": outputs["verdict"], "INPUT_FAIL_ON": "fail",
                              "GITHUB_ACTIONS": "true"})
    assert fin.returncode == 1
    assert fin.stdout.startswith("::error title=vmimage::vmimage: verdict fail")

    # The waivers input: the same image, the violation accepted in writing, passes.
    waivers = tmp_path / "waivers.toml"
    waivers.write_text('[[waiver]]\nrule = "LINUX-SHELL-HISTORY-EMPTY"\n'
                       'reason = "the test says so"\nexpires = 2099-01-01\n')
    proc, outputs, summary = run_script(tmp_path / "waived", vhd, venv=action_venv["venv"],
                                        extra={"INPUT_WAIVERS": str(waivers)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs["exit-code"] == "0"
    assert "| `LINUX-SHELL-HISTORY-EMPTY` | fail (waived) |" in summary


def test_fail_on_warning(action_venv, tmp_path):
    """A warning-only image: LINUX-RESOLV-CONF-REMOVED is a warning under azure-current."""
    profile = (REPO / "src/vmimage/profiles/azure-current.toml").read_text()
    assert re.search(r'^LINUX-RESOLV-CONF-REMOVED = "warning"', profile, re.M)
    disk = ib.compliant_copy(tmp_path / "warn.raw")
    ib.put_file(disk.path, disk.root_offset, "/etc/resolv.conf", "nameserver 10.1.2.3\n")
    vhd = ib.to_vhd(disk)
    disk.path.unlink()

    proc, outputs, summary = run_script(tmp_path / "fail", vhd, venv=action_venv["venv"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outputs["exit-code"] == "0" and outputs["verdict"] == "pass"
    doc = json.loads(Path(outputs["json-file"]).read_text())
    warned = [f["check_id"] for f in doc["findings"] if f["status"] == "warning"]
    assert warned == ["LINUX-RESOLV-CONF-REMOVED"]
    assert "LINUX-RESOLV-CONF-REMOVED" not in summary  # below fail-on: not listed

    proc, outputs, summary = run_script(tmp_path / "warning", vhd, venv=action_venv["venv"],
                                        extra={"INPUT_FAIL_ON": "warning"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert outputs["exit-code"] == "1"
    assert "fail-on warning: exit 1, the job fails" in summary
    assert "| `LINUX-RESOLV-CONF-REMOVED` | warning |" in summary


def test_unusable_image_is_exit_2_with_no_stale_reports(action_venv, tmp_path):
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    (out_dir / "vmimage.html").write_text("an old report")  # must not stand for this run
    missing = tmp_path / "no-such.vhd"
    proc, outputs, summary = run_script(tmp_path / "run", missing, venv=action_venv["venv"],
                                        extra={"INPUT_OUTPUT_DIR": str(out_dir)})
    assert proc.returncode == 2
    assert outputs["verdict"] == "error" and outputs["exit-code"] == "2"
    assert outputs["report-dir"] == str(out_dir)
    assert not any(k.endswith("-file") for k in outputs)
    assert list(out_dir.iterdir()) == []
    assert str(missing) in summary and "### vmimage check: error" in summary
    assert "Traceback" not in proc.stderr


def test_a_sas_in_the_image_url_is_never_printed(action_venv, tmp_path):
    # A blob URL on a closed local port: nothing leaves the machine, whatever vmimage does.
    secret = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
    url = f"http://127.0.0.1:9/devstoreaccount1/vhds/os.vhd?sv=2024-08-04&sp=r&sig={secret}"
    proc, outputs, summary = run_script(tmp_path / "run", url, venv=action_venv["venv"],
                                        extra={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == 2
    everything = proc.stdout + proc.stderr + summary + json.dumps(outputs)
    assert secret not in everything and "c2VjcmV0" not in everything
    assert "::error title=vmimage::" in proc.stdout


def test_script_refuses_a_venv_it_did_not_make(tmp_path):
    """VMIMAGE_VENV pointing at a directory that is not a venv: exit 3, nothing deleted."""
    notvenv = tmp_path / "data"
    notvenv.mkdir()
    (notvenv / "keep.txt").write_text("precious")
    proc, outputs, summary = run_script(tmp_path / "run", tmp_path / "x.vhd", venv=notvenv)
    assert proc.returncode == 3
    assert outputs == {"verdict": "error", "exit-code": "3"}
    assert "is not a virtual environment" in proc.stderr
    assert (notvenv / "keep.txt").read_text() == "precious"
    assert summary.startswith("### vmimage check: error")


def test_script_without_an_image(tmp_path):
    proc, outputs, summary = run_script(tmp_path / "run", "", venv=tmp_path / "venv")
    assert proc.returncode == 2
    assert outputs == {"verdict": "error", "exit-code": "2"}
    assert proc.stderr.strip().splitlines() == [
        "vmimage action: the image input is empty: name a disk image to check"]
    assert not (tmp_path / "venv").exists()  # stopped before installing anything
    assert "the image input is empty" in summary


@pytest.mark.parametrize(("code", "verdict", "rc", "says"), [
    ("0", "pass", 0, "vmimage: verdict pass, nothing at or above fail-on fail"),
    ("0", "incomplete", 0, "vmimage: verdict incomplete"),
    ("1", "fail", 1, "a finding at or above fail-on fail"),
    ("2", "error", 2, "could not check the image (exit 2"),
    ("", "", 3, "vmimage check did not run"),
])
def test_finish_step(code, verdict, rc, says):
    env = {**os.environ, "VMIMAGE_EXIT_CODE": code, "VMIMAGE_VERDICT": verdict,
           "INPUT_FAIL_ON": "fail"}
    env.pop("GITHUB_ACTIONS", None)
    proc = subprocess.run(["bash", FINISH_SH], capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == rc
    assert says in proc.stdout + proc.stderr
    assert "::error" not in proc.stdout  # annotations only on a runner
