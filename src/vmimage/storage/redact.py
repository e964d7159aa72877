"""Kept only so that importers not yet switched keep working: the one redactor is
:mod:`vmimage.secrets`. Import it from there; this module goes once no one imports it."""

from __future__ import annotations

from vmimage.secrets import REDACTED, one_line, redact, register_secret

__all__ = ["REDACTED", "one_line", "redact", "register_secret"]
