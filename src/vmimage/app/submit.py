"""Render a submission (``vmimage submit render``): the classic Create VM Image bodies or Partner
Center's technical configuration, from a manifest that breaks no rule.

Rendering needs blob URLs only, not the VHDs on this machine, so the rules about local files
are left out, and nothing is rendered while another manifest rule fails.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vmimage.app.catalog import profile as load_profile
from vmimage.errors import InputError
from vmimage.findings import Finding, Status
from vmimage.offer.classic import render_classic, request_line
from vmimage.offer.manifest import LoadedManifest, load_manifest
from vmimage.offer.partner_center import render_partner_center
from vmimage.offer.rules import validate_offer
from vmimage.offer.sas import read_tokens, redact_finding
from vmimage.offer.submission import Rendered
from vmimage.privatefile import private_dir, write_private
from vmimage.profiles import Profile
from vmimage.rules import Subject

__all__ = ["FORMATS", "Rendered", "Submission", "render", "request_line", "write"]

FORMATS = ("classic-xml", "partner-center")
#: Rules about local files: rendering needs blob URLs only, not the VHDs on this machine.
_LOCAL_ONLY = frozenset({"OFFER-DISK-FILE"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class Submission:
    """What rendering gave: the failed rules (then nothing was rendered), or the documents."""

    failed: list[Finding] = field(default_factory=list)
    rendered: Rendered | None = None


def _judged(manifest: str | os.PathLike[str], profile_name: str | Profile
            ) -> tuple[LoadedManifest, list[Finding]]:
    """The manifest, and the rules that fail on it (signatures redacted); rules about local
    files are left out: rendering needs blob URLs only."""
    loaded = load_manifest(manifest)
    findings = validate_offer(loaded, load_profile(profile_name, (Subject.MANIFEST,)), probe=None)
    return loaded, [redact_finding(f) for f in findings
                    if f.status is Status.FAIL and f.check_id not in _LOCAL_ONLY]


def render(manifest: str | os.PathLike[str], fmt: str, profile_name: str,
           sas_env: str | None = None, sas_file: str | os.PathLike[str] | None = None
           ) -> Submission:
    """The documents of ``fmt`` for ``manifest``, tokens read from ``sas_env`` or ``sas_file``
    (never from an argument: arguments show in ``ps``).

    Raises:
        InputError: an unknown format, tokens given to the classic request (it names blobs in
            the publisher's own account), or a file that cannot be read.
    """
    if fmt not in FORMATS:
        raise InputError("--format", f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    if fmt == "classic-xml" and (sas_env or sas_file):
        raise InputError("--sas-env/--sas-file", "the classic request names blobs in your own "
                                                 "storage account: it takes no SAS tokens")
    loaded, failed = _judged(manifest, profile_name)
    if failed:
        return Submission(failed=failed)
    model = loaded.require()
    if fmt == "classic-xml":
        return Submission(rendered=render_classic(model))
    tokens = read_tokens(sas_env, Path(sas_file) if sas_file is not None else None)
    return Submission(rendered=render_partner_center(model, tokens))


def registration_requests(manifest: str | os.PathLike[str], profile_name: str | Profile,
                          sas_env: str | None = None,
                          sas_file: str | os.PathLike[str] | None = None) -> Submission:
    """The Create VM Image bodies ``vmimage register`` sends: as ``submit render --format
    classic-xml`` renders them, each MediaLink with its SAS token when tokens are given
    (a self-hosted service reads the blobs with them; Azure used the account's keys).

    Raises:
        InputError: the manifest or the token source cannot be read.
    """
    loaded, failed = _judged(manifest, profile_name)
    if failed:
        return Submission(failed=failed)
    tokens = read_tokens(sas_env, Path(sas_file) if sas_file is not None else None)
    return Submission(rendered=render_classic(loaded.require(), tokens))


def write(rendered: Rendered, output: str | os.PathLike[str]) -> list[Path]:
    """Write every document into ``output`` (created 0700), each file 0600: they hold SAS
    URIs.

    Raises:
        InputError: the directory or a file cannot be written (one line naming it).
    """
    directory = private_dir(output)
    return [write_private(directory / _SAFE_NAME.sub("_", name), text)
            for name, text in rendered.documents.items()]
