"""The HTML page: parses, self-contained, names every check, escapes what the image says."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.report_samples import real_report, sample_report
from vmimage.report.render import render


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in ("meta", "br", "link", "img", "input", "col"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    parser.close()
    assert parser.open == [], parser.open  # every element closed, properly nested
    return parser


def test_parses_and_names_every_check():
    report = sample_report()
    page = render(report, "html")
    parsed = _parse(page)
    text = "".join(parsed.text)
    for f in report.findings:
        assert f.check_id in text
    assert "FAILS" in text and "1 rule failed (TEST-HISTORY)" in text
    assert "azure-current" in text and "disk.vhd" in text and "0.1.0" in text


def test_self_contained_without_scripts():
    parsed = _parse(render(sample_report(), "html"))
    assert "script" not in parsed.tags
    assert "link" not in parsed.tags and "img" not in parsed.tags
    assert not [v for k, v in parsed.attrs if k in ("src", "href")]
    assert "style" in parsed.tags


def test_escapes_file_content():
    page = render(sample_report(), "html")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "regeneralize &lt;now&gt;" in page
    assert "\x1b" not in page and "\x00" not in page
    assert "\\x1b[31mred" in page


def test_verdict_and_groups_in_order():
    page = render(sample_report(), "html")
    assert page.index('id="fail"') < page.index('id="warning"') < page.index('id="pass"') \
        < page.index('id="skip"')
    waived = render(sample_report(waived=True), "html")
    assert waived.index('id="warning"') < waived.index('id="waived"') < waived.index('id="pass"')
    ok = render(sample_report(failing=False), "html")
    assert "PASSES" in ok and "FAILS" not in ok and 'class="verdict ok"' in ok
    partial = render(sample_report(failing=False, blocking_skip=True), "html")
    assert "INCOMPLETE" in partial and 'class="verdict partial"' in partial
    assert 'id="fail"' not in ok


def test_real_report(tmp_path):
    report = real_report(tmp_path)
    text = "".join(_parse(render(report, "html")).text)
    for f in report.findings:
        assert f.check_id in text


def test_header_identifies_the_image():
    from tests.report_samples import UNIQUE_ID

    parsed = _parse(render(sample_report(), "html"))
    text = "".join(parsed.text)
    for label, value in (("file", "disk.vhd"), ("size", "30 GiB (32212254720 bytes)"),
                         ("VHD unique ID", UNIQUE_ID),
                         ("partition table ID", "1234abcd (MBR)"), ("vmimage", "0.1.0"),
                         ("profile", "azure-current"), ("time", "2025-01-02T03:04:05+00:00")):
        assert f"{label}{value}" in text, label


def test_backticks_become_code_and_stay_escaped():
    page = render(sample_report(waived=True), "html")
    assert "<code>fallocate --dig-holes disk.vhd</code>" in page
    assert "`" not in "".join(_parse(page).text).split("Disk metadata")[0]
    # a waiver (or message) with markup inside and around the backticks stays text
    assert "<code>audit</code> service &lt;on purpose&gt;" in page


def test_code_spans_escape_what_they_hold():
    from vmimage.report.html import code_spans

    assert str(code_spans("run `<b>x</b>` & `y`")) == \
        "run <code>&lt;b&gt;x&lt;/b&gt;</code> &amp; <code>y</code>"
    assert str(code_spans("a lone ` stays")) == "a lone ` stays"
    assert str(code_spans("`\x1b[31m`")) == "<code>\\x1b[31m</code>"


def test_failures_show_evidence_and_fix_on_rows_of_their_own():
    page = render(sample_report(), "html")
    fail = page[page.index('<tbody class="finding fail"'):]
    fail = fail[:fail.index("</tbody>")]
    assert '<tr class="detail evidence"><td colspan="2">' in fail
    assert '<tr class="detail fix"><td colspan="2"><span class="label">Fix</span>Delete the ' \
           'file &amp; regeneralize &lt;now&gt;.</td></tr>' in fail
    assert 'table-layout: fixed' in page


def test_passes_and_skips_are_collapsed():
    page = render(sample_report(), "html")
    assert '<details id="pass" class="group">' in page
    assert '<details id="skip" class="group">' in page  # a non-blocking skip
    blocking = render(sample_report(failing=False, blocking_skip=True), "html")
    assert '<details id="skip" class="group" open>' in blocking


def test_waived_section_names_the_waiver():
    from tests.report_samples import WAIVER

    page = render(sample_report(waived=True), "html")
    text = "".join(_parse(page).text)
    assert "Waived (1)" in text and "waived fail" in text
    assert WAIVER.replace("`", "") in text
    assert 'id="fail"' not in page and "PASSES" in text


def test_only_failed_leaves_out_passes_and_skips():
    page = render(sample_report(), "html", only_failed=True)
    text = "".join(_parse(page).text)
    assert 'id="pass"' not in page and 'id="skip"' not in page
    assert "TEST-HISTORY" in text and "VHD-SPARSE" in text
    assert "3 other findings left out" in text
    assert "VHD-FIXED-FORMAT" not in text
