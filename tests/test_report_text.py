"""Text rendering and format selection."""

from __future__ import annotations

import pytest

from tests.report_samples import sample_report
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
    raw = subprocess.run([VMIMAGE, "vhd", "inspect", str(path), "--lenient", "--json"],
                         capture_output=True, text=True, env=env, check=False)
    data = json.loads(raw.stdout)
    assert data["footer"]["creator_application"] == "\x1b]0;"
    assert data["footer"]["creator_host_os"] == "\x9b8m\x07"
