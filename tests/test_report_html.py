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
        if tag not in ("meta", "br", "link", "img", "input"):
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
