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
