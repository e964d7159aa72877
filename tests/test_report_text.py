"""Text rendering and format selection."""

from __future__ import annotations

import pytest

from tests.report_samples import long_report, sample_report
from vmimage.errors import InputError
from vmimage.report.render import FORMATS, render


def test_plain_text_has_no_escape_codes_and_keeps_brackets():
    out = render(sample_report(), "text")
    assert "\x1b" not in out
    assert "[bold]not markup[/bold]" in out  # file content is not rich markup
    assert "\\x1b[31mred\\x00" in out  # control characters shown, not sent to the terminal
    assert "FAILS vmimage's offline checks for azure-current" in out
    assert "2 passed, 1 failed, 1 warnings, 1 skipped" in out
    assert "at /home/a b/.bash_history:3" in out


def test_colour_only_when_asked():
    out = render(sample_report(), "text", color=True)
    assert "\x1b[" in out
    assert "PASSES" in render(sample_report(failing=False), "text")


# -- plain lines when not a terminal, failures first (issue 9) --------------------------------

BOX = "┏┃│─┗└┡━"


def test_plain_text_is_lines_not_a_box_table():
    out = render(sample_report(), "text")
    assert not any(c in out for c in BOX)
    lines = out.splitlines()
    assert all(line == line.rstrip() for line in lines)  # no padding to 160 columns
    assert "FAIL     TEST-HISTORY      bad value" in out
    long = render(long_report(), "text").splitlines()
    evidence = next(line for line in long if "/.bash_history:1: seen 'ssh-rsa " in line)
    assert len(evidence) > 400 and evidence.endswith("builder@ci', required '0 bytes'")


def test_failures_first_with_evidence_and_fix_under_them():
    lines = render(sample_report(), "text").splitlines()
    firsts = [line.split()[0] for line in lines
              if line.split() and line.split()[0] in ("FAIL", "WARNING", "PASS", "SKIP")]
    assert firsts == ["FAIL", "WARNING", "PASS", "PASS", "SKIP"]
    at = lines.index(next(line for line in lines if line.startswith("FAIL ")))
    assert lines[at + 1].startswith("  at /home/a b/.bash_history:3: seen ")
    assert lines[at + 2] == "  at /home/c/.zsh_history:1: seen '12 bytes'"
    assert lines[at + 3] == "  fix: Delete the file & regeneralize <now>."
    assert lines[at + 4].startswith("  requirements: LNX-HISTORY, MS-48")


def test_summary_names_the_failed_rules():
    lines = render(sample_report(), "text").splitlines()
    assert lines[-2] == "2 passed, 1 failed, 1 warnings, 1 skipped"
    assert lines[-1] == ("FAILS vmimage's offline checks for azure-current: 1 rule failed "
                         "(TEST-HISTORY)")


def test_header_names_the_disk():
    head = render(sample_report(), "text").splitlines()[:4]
    assert head[2] == ("disk: size 30 GiB (32212254720 bytes), format fixed VHD, VHD unique ID "
                       "5d3c2b1a-0f9e-4d8c-b7a6-958473625140, partition table ID 1234abcd (MBR)")


def test_backticks_stay_plain_in_text():
    assert "fix: Make a sparse copy: `fallocate --dig-holes disk.vhd`." in render(
        sample_report(), "text")


def test_waived_finding_says_so_with_its_reason():
    from tests.report_samples import WAIVER

    out = render(sample_report(waived=True), "text")
    lines = out.splitlines()
    row = lines.index(next(line for line in lines if line.startswith("WAIVED ")))
    assert "TEST-HISTORY" in lines[row]
    assert lines[row + 1] == f"  waived (fail): {WAIVER}"
    assert lines[-2].endswith(", 1 waived")
    assert lines[-1].startswith("PASSES") and "1 waived (TEST-HISTORY)" in lines[-1]
    # waived comes after the warnings, before the passes
    assert out.index("WARNING  VHD-SPARSE") < out.index("WAIVED ") < out.index("PASS     ")


def test_only_failed_lists_failures_and_warnings_and_keeps_the_counts():
    out = render(sample_report(), "text", only_failed=True)
    assert "TEST-HISTORY" in out and "VHD-SPARSE" in out
    assert "VHD-FIXED-FORMAT" not in out and "TEST-SSH-ALIVE" not in out
    assert "3 other findings left out" in out
    assert "2 passed, 1 failed, 1 warnings, 1 skipped" in out
    waived = render(sample_report(waived=True), "text", only_failed=True)
    assert "WAIVED   TEST-HISTORY" in waived


def test_terminal_table_keeps_the_evidence_readable():
    out = render(sample_report(), "text", color=True, width=100)
    assert "┃" in out
    lines = out.splitlines()
    assert max(len(_strip_ansi(line)) for line in lines) <= 100
    # the finding column holds the evidence: it gets most of the width
    evidence = next(_strip_ansi(line) for line in lines if "at /home/c/.zsh_history:1" in line)
    start = evidence.index("at /home/c")
    assert start < 40


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_render_findings_is_plain_lines_when_not_a_terminal():
    from vmimage.report.console import console, render_findings, summary_line

    report = sample_report()
    out = console()  # pytest's stdout is not a terminal
    with out.capture() as cap:
        out.print(render_findings(report.findings, "disk.vhd as os-linux"))
        out.print(summary_line(report.findings))
    text = cap.get()
    assert not any(c in text for c in BOX)
    lines = text.splitlines()
    assert lines[0] == "disk.vhd as os-linux"
    assert lines[1].startswith("FAIL     TEST-HISTORY")
    assert lines[-1] == "2 passed, 1 failed, 1 warnings, 1 skipped; failed: TEST-HISTORY"
    assert all(line == line.rstrip() for line in lines)


def test_render_findings_is_a_table_at_a_terminal():
    import io

    from rich.console import Console

    from vmimage.report.console import render_findings

    out = Console(file=io.StringIO(), force_terminal=True, width=120)
    out.print(render_findings(sample_report().findings, "t"))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "┃" in text and "at /home/c/.zsh_history:1" in text


def test_plain_lines_wrap_instead_of_being_cut_on_a_cropping_console():
    import io

    from rich.console import Console

    from vmimage.report.console import render_findings

    out = Console(file=io.StringIO(), force_terminal=False, width=60, soft_wrap=False)
    out.print(render_findings(sample_report().findings, "t"))
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert all(len(line) <= 60 for line in text.splitlines())
    assert "required '0 bytes'" in text.replace("\n", " ")  # the end of a long line is kept


def test_summary_line_counts_waived():
    from vmimage.report.console import summary_line

    assert summary_line(sample_report(waived=True).findings) == \
        "2 passed, 0 failed, 1 warnings, 1 skipped, 1 waived"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_a_string_ending_in_newline(fmt):
    out = render(sample_report(), fmt)
    assert out.endswith("\n")


def test_unknown_format_is_an_input_error():
    with pytest.raises(InputError, match="--format"):
        render(sample_report(), "xml")


# -- hostile text: control and bidi characters never reach the terminal raw (issue 17) -------

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_printable_escapes_bidi_controls_and_keeps_plain_text():
    from vmimage.report.console import printable

    shown = printable(f"ok{BIDI}ok\x1b]52;c;aGk=\x07 déjà vu\ttab")
    assert not any(c in shown for c in BIDI + "\x1b\x07")
    assert "\\u202e" in shown and "\\u2069" in shown and "\\x1b]52" in shown
    assert "déjà vu\ttab" in shown


def test_findings_table_escapes_bidi_in_messages_and_titles():
    from vmimage.findings import Evidence, Finding, Severity, Status
    from vmimage.report.console import console, render_findings

    finding = Finding(check_id="LINUX-X", title="t", status=Status.FAIL, severity=Severity.FAIL,
                      covers=("X",), message="user \u202eexe.txt", remediation="",
                      evidence=(Evidence(path="/etc/\u2066x", seen="\x1b[8m"),))
    out = console()
    with out.capture() as cap:
        out.print(render_findings([finding], "title \u202e[bold]x[/bold]"))
    text = cap.get()
    assert not any(c in text for c in BIDI + "\x1b")
    assert "\\u202e" in text and "[bold]x[/bold]" in text


def test_vhd_inspect_escapes_footer_creator_fields_but_json_keeps_them(tmp_path):
    import json
    import subprocess
    from dataclasses import replace

    from tests.vhd_util import VMIMAGE
    from vmimage.disk import vhd

    size = 1024 * 1024
    path = tmp_path / "evil\u202eQHV.vhd"
    footer = replace(vhd.Footer.new(size), creator_application=b"\x1b]0;",
                     creator_host_os=b"\x9b8m\x07").with_checksum()
    with open(path, "wb") as fh:
        fh.truncate(size)
        fh.seek(size)
        fh.write(footer.pack())
    env = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([VMIMAGE, "vhd", "inspect", str(path), "--lenient"],
                         capture_output=True, text=True, env=env, check=False)
    assert res.returncode in (0, 1), res.stderr
    assert not any(c in res.stdout for c in BIDI + "\x1b\x07\x9b"), repr(res.stdout)
    assert "\\x1b]0;" in res.stdout and "\\x9b8m\\x07" in res.stdout
    assert "\\u202e" in res.stdout
    raw = subprocess.run([VMIMAGE, "vhd", "inspect", str(path), "--lenient", "--format", "json"],
                         capture_output=True, text=True, env=env, check=False)
    data = json.loads(raw.stdout)
    assert data["footer"]["creator_application"] == "\x1b]0;"
    assert data["footer"]["creator_host_os"] == "\x9b8m\x07"


def test_vhd_inspect_table_is_field_lines_when_not_a_terminal(tmp_path):
    from vmimage.disk import convert
    from vmimage.disk.inspect import inspect_disk
    from vmimage.report.console import console, render_disk_info

    path = tmp_path / "d.vhd"
    convert.create(path, 20 * 1024 * 1024)
    out = console()
    with out.capture() as cap:
        out.print(render_disk_info(inspect_disk(path)))
    lines = cap.get().splitlines()
    assert lines[0] == str(path)
    assert "  format: fixed VHD" in lines
    assert any(line.startswith("  footer unique_id: ") for line in lines)
    assert not any(c in cap.get() for c in BOX)
