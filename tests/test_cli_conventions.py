"""One set of conventions (issue 9), as a publisher's CI uses them: several report files from
one run, ``--fail-on``, ``--only-failed``, custom profile files, waivers that expire, settings
from the environment and ``vmimage.toml`` (flag > env > file), ``--debug`` without secrets,
progress lines in a log, ``--version`` and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import defusedxml.ElementTree as ET
import pytest

import vmimage
from tests import imagebuild as ib
from vmimage.disk.convert import convert_in_place

HISTORY = "LINUX-SHELL-HISTORY-EMPTY"


def vmimage_cli(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """``vmimage ARGS`` as a process, with no configuration file of the user's in the way."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("VMIMAGE_")}
    full["XDG_CONFIG_HOME"] = str(cwd or Path("/nonexistent"))
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "vmimage", *map(str, args)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False, cwd=cwd, env=full)


@pytest.fixture(scope="module")
def history_vhd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compliant image with one violation: a root shell history (a blocking rule)."""
    disk = ib.compliant_copy(tmp_path_factory.mktemp("history") / "history.raw")
    ib.put_file(disk.path, disk.root_offset, "/root/.bash_history", "sudo reboot\n", mode=0o600)
    convert_in_place(disk.path)
    return disk.path


def _waivers(path: Path, expires: str, *, rule: str = HISTORY, extra: str = "") -> Path:
    path.write_text(textwrap.dedent(f"""\
        [[waiver]]
        rule = "{rule}"
        reason = "history kept for the support team; case 4711"
        expires = {expires}
        {extra}
        """))
    return path


def _day(delta: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=delta)).isoformat()


def test_version() -> None:
    proc = vmimage_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"vmimage {vmimage.__version__}"


def test_several_report_files_from_one_run(compliant_vhd: Path, tmp_path: Path) -> None:
    outs = [tmp_path / n for n in ("r.sarif", "r.html", "r.junit.xml", "r.json", "r.txt")]
    proc = vmimage_cli("check", compliant_vhd, *[a for o in outs for a in ("-o", o)])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(outs[0].read_text())["runs"][0]["tool"]["driver"]["name"] == "vmimage"
    assert outs[1].read_text().lstrip().lower().startswith("<!doctype html>")
    assert ET.fromstring(outs[2].read_text()).findall(".//testcase")
    assert json.loads(outs[3].read_text())["summary"]["verdict"] == "pass"
    assert "PASSES" in outs[4].read_text()
    lines = proc.stdout.splitlines()
    assert [ln.split(" (")[-1] for ln in lines[:5]] == ["sarif)", "html)", "junit)", "json)",
                                                         "text)"]
    assert lines[-1].startswith("PASSES vmimage's offline checks for azure-current")


def test_a_bad_output_name_is_refused_before_the_run(compliant_vhd: Path, tmp_path: Path
                                                     ) -> None:
    good, bad = tmp_path / "r.json", tmp_path / "r.pdf"
    proc = vmimage_cli("check", compliant_vhd, "-o", good, "-o", bad)
    assert proc.returncode == 2 and "cannot tell the format" in proc.stderr
    assert not good.exists()


def test_fail_on_warning_with_a_custom_profile_file(history_vhd: Path, tmp_path: Path) -> None:
    profile = tmp_path / "contoso.toml"
    profile.write_text(f'extends = "azure-current"\n[severity]\n{HISTORY} = "warning"\n')
    proc = vmimage_cli("check", history_vhd, "--profile", profile, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["profile"] == "contoso"
    assert {f["check_id"]: f["status"] for f in doc["findings"]}[HISTORY] == "warning"
    assert vmimage_cli("check", history_vhd, "--profile", profile,
                       "--fail-on", "warning").returncode == 1


def test_precedence_flag_over_env_over_file(history_vhd: Path, tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/relaxed.toml").write_text(
        f'extends = "azure-current"\n[severity]\n{HISTORY} = "warning"\n')
    (tmp_path / "vmimage.toml").write_text('profile = "profiles/relaxed.toml"\n'
                                           'fail-on = "warning"\n')
    work = tmp_path / "sub" / "dir"  # found in a parent directory, paths relative to the file
    work.mkdir(parents=True)
    assert vmimage_cli("check", history_vhd, cwd=work).returncode == 1  # file: fail-on warning
    env = {"VMIMAGE_FAIL_ON": "fail"}
    assert vmimage_cli("check", history_vhd, cwd=work, env=env).returncode == 0  # env > file
    proc = vmimage_cli("check", history_vhd, "--fail-on", "warning", cwd=work, env=env)
    assert proc.returncode == 1  # flag > env
    proc = vmimage_cli("check", history_vhd, "-f", "json", cwd=work,
                       env={"VMIMAGE_PROFILE": "azure-2015"})
    # env beats the file's profile; azure-2015 allows up to 1 KB of history: nothing to flag
    assert json.loads(proc.stdout)["profile"] == "azure-2015" and proc.returncode == 0
    proc = vmimage_cli("-v", "check", history_vhd, cwd=work, env=env)
    assert "profile" in proc.stderr and "vmimage.toml" in proc.stderr  # --verbose says whence
    assert "fail-on fail (from VMIMAGE_FAIL_ON)" in proc.stderr


def test_a_typo_in_the_configuration_is_refused(compliant_vhd: Path, tmp_path: Path) -> None:
    (tmp_path / "vmimage.toml").write_text('fail_on = "warning"\n')
    proc = vmimage_cli("check", compliant_vhd, cwd=tmp_path)
    assert proc.returncode == 2 and "unknown setting(s) fail_on" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("text, problem", [
    ('extends = "azure-1999"\n', "must extend one of"),
    ('extends = "azure-current"\ncolour = "red"\n', "unknown profile key(s) colour"),
    ('extends = "azure-current"\n[severity]\nLINUX-NOPE = "fail"\n', "LINUX-NOPE"),
    ('extends = "azure-current"\n[severity]\nLINUX-NO-SWAP = "fatal"\n', "invalid profile"),
    ("extends = \n", "not a TOML profile"),
])
def test_a_bad_profile_file_is_one_line(compliant_vhd: Path, tmp_path: Path, text: str,
                                        problem: str) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(text)
    proc = vmimage_cli("check", compliant_vhd, "--profile", profile)
    assert proc.returncode == 2 and problem in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_a_live_waiver_keeps_the_finding_visible_and_passes(history_vhd: Path,
                                                             tmp_path: Path) -> None:
    waivers = _waivers(tmp_path / "waivers.toml", _day(30))
    proc = vmimage_cli("check", history_vhd, "--waivers", waivers, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    finding = {f["check_id"]: f for f in doc["findings"]}[HISTORY]
    assert finding["status"] == "fail" and "case 4711" in finding["waiver"]
    assert _day(30) in finding["waiver"]
    assert doc["summary"]["counts"]["waived"] == 1
    sarif = tmp_path / "r.sarif"
    assert vmimage_cli("check", history_vhd, "--waivers", waivers, "-o", sarif).returncode == 0
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    waived = [r for r in results if r["ruleId"] == HISTORY]
    assert waived and waived[0]["suppressions"][0]["kind"] == "external"
    # --only-failed still lists what was waived, and nothing that passed
    proc = vmimage_cli("check", history_vhd, "--waivers", waivers, "--only-failed", "-f", "json")
    listed = {f["check_id"] for f in json.loads(proc.stdout)["findings"]}
    assert listed == {HISTORY}


def test_an_expired_waiver_fails_again_and_says_why(history_vhd: Path, tmp_path: Path) -> None:
    waivers = _waivers(tmp_path / "waivers.toml", _day(-1))
    proc = vmimage_cli("check", history_vhd, "--waivers", waivers, "-f", "json")
    assert proc.returncode == 1
    finding = {f["check_id"]: f for f in json.loads(proc.stdout)["findings"]}[HISTORY]
    assert finding["waiver"] is None and f"waiver expired on {_day(-1)}" in finding["message"]
    assert "expired" in proc.stderr


def test_a_waiver_for_another_path_does_not_apply(history_vhd: Path, tmp_path: Path) -> None:
    waivers = _waivers(tmp_path / "w.toml", _day(30), extra='path = "other-*.vhd"')
    assert vmimage_cli("check", history_vhd, "--waivers", waivers).returncode == 1
    waivers = _waivers(tmp_path / "w.toml", _day(30), extra=f'path = "{history_vhd.name}"')
    assert vmimage_cli("check", history_vhd, "--waivers", waivers).returncode == 0


@pytest.mark.parametrize("rule, expires, problem", [
    ("LINUX-NOPE", _day(30), "is no rule vmimage has"),
    (HISTORY, '"someday"', "needs expires = YYYY-MM-DD"),
])
def test_a_bad_waiver_is_one_line(compliant_vhd: Path, tmp_path: Path, rule: str,
                                  expires: str, problem: str) -> None:
    waivers = _waivers(tmp_path / "w.toml", expires, rule=rule)
    proc = vmimage_cli("check", compliant_vhd, "--waivers", waivers)
    assert proc.returncode == 2 and problem in proc.stderr and "waiver 1" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_only_failed_text_lists_the_failure_alone(history_vhd: Path) -> None:
    proc = vmimage_cli("check", history_vhd, "--only-failed")
    assert proc.returncode == 1
    assert HISTORY in proc.stdout and "LINUX-NO-SWAP" not in proc.stdout
    assert "FAILS" in proc.stdout and HISTORY in proc.stdout.splitlines()[-1]


def test_debug_shows_reads_and_rule_times(compliant_vhd: Path) -> None:
    proc = vmimage_cli("--debug", "check", compliant_vhd, "--check", "LINUX-NO-SWAP")
    assert proc.returncode == 0, proc.stderr
    assert "vmimage: debug:" in proc.stderr
    assert " bytes at offset " in proc.stderr and "file /etc/fstab" in proc.stderr
    assert "rule LINUX-NO-SWAP: pass in " in proc.stderr


def test_debug_never_shows_a_signature() -> None:
    secret = "s3cr3tSIGNATUREvalue%3D"
    uri = ("https://acct.blob.core.windows.net/vhds/os.vhd?sv=2023-11-03&sr=c&sp=rl"
           f"&st=2026-01-01T00:00:00Z&se=2026-01-02T00:00:00Z&sig={secret}")
    proc = vmimage_cli("--debug", "-v", "sas", "verify", "--offline", uri, "-f", "json")
    assert proc.returncode in (0, 1), proc.stderr
    assert secret not in proc.stderr and secret not in proc.stdout


def test_progress_lines_when_stderr_is_a_log(tmp_path: Path) -> None:
    src = tmp_path / "in.qcow2"
    raw = tmp_path / "in.raw"
    with raw.open("wb") as fh:
        fh.truncate(64 << 20)
        fh.seek(1 << 20)
        fh.write(os.urandom(8 << 20))
    ib.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, src])
    proc = vmimage_cli("vhd", "convert", src, tmp_path / "out.vhd",
                       env={"VMIMAGE_PROGRESS_INTERVAL": "0"})
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vmimage: convert: ")]
    assert lines and "done in" in lines[-1] and "\x1b" not in proc.stderr
    quiet = vmimage_cli("vhd", "convert", src, tmp_path / "q.vhd", "--quiet",
                        env={"VMIMAGE_PROGRESS_INTERVAL": "0"})
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "vmimage.bash"
    script.write_text(vmimage_cli("completion", "bash").stdout)
    assert subprocess.run(["bash", "-n", script], check=False).returncode == 0

    def complete(*words: str) -> set[str]:
        line = " ".join(words)
        probe = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
                 "_vmimage; printf '%s\\n' \"${COMPREPLY[@]}\"")
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                             check=True, cwd=tmp_path).stdout
        return set(out.split())

    assert {"convert", "create"} <= complete("vmimage", "vhd", "c")
    assert "--fail-on" in complete("vmimage", "check", "x.vhd", "--fa")
    assert "--in-place" in complete("vmimage", "vhd", "convert", "--in")
    fish = vmimage_cli("completion", "fish").stdout
    assert "complete -c vmimage" in fish and "-l fail-on" in fish
    zsh = vmimage_cli("completion", "zsh").stdout
    assert "bashcompinit" in zsh
