"""``vmimage upload FILE BLOB_URL``: a VHD to a page blob, data only, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.cli.common import DATA_FORMATS, add_format, emit_data, plan_outputs
from vmimage.cli.options import URL_ARG_HELP
from vmimage.cli.parsing import Parser, command
from vmimage.errors import InputError
from vmimage.units import format_size

if TYPE_CHECKING:
    from vmimage.app.upload import UploadResult
    from vmimage.cli.progress import Progress


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage upload``."""
    p = command(sub, "upload", run, run.__doc__)
    p.add_argument("file", metavar="FILE", type=Path,
                   help="a fixed VHD (whole MiB, valid footer)")
    p.add_argument("blob_url", metavar="BLOB_URL", help=URL_ARG_HELP)
    p.add_argument("--workers", type=int, default=8, help="parallel Put Page requests (8)")
    p.add_argument("--put-md5", action="store_true",
                   help="also hash the whole file and set the blob's Content-MD5 (reads every "
                        "data byte again; as AzCopy's --put-md5)")
    p.add_argument("--overwrite", action="store_true",
                   help="recreate the blob if it exists (a rerun without it resumes an "
                        "interrupted upload)")
    p.add_argument("--allow-any", action="store_true",
                   help="upload a file that is not a valid fixed VHD (its length must still "
                        "be a multiple of 512)")
    p.add_argument("--verify", action="store_true",
                   help="read the stored data ranges back and compare them with the file; "
                        "exit 1 on a difference")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds to wait for each response before retrying (120)")
    p.add_argument("--retries", type=int, default=8,
                   help="attempts per request on 500, 503, timeouts and lost connections "
                        "(backoff from 0.25 s; 8)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress and no summary (errors only)")
    add_format(p, DATA_FORMATS)


def run(args: argparse.Namespace) -> int:
    """Upload a VHD as a page blob: only data ranges, in parallel, resumable, every request
    checked by its own MD5.

    Rerun the same command after an interruption to send only what is missing.

    Credentials: a SAS in the URL, AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING,
    AZURE_STORAGE_KEY, or Entra ID (docs/storage.md).
    """
    from vmimage.app.upload import RetryPolicy, UploadOptions
    from vmimage.app.upload import upload as upload_file

    if args.retries < 1:
        raise InputError("--retries", "must be at least 1")
    outputs = plan_outputs(args.fmt, args.outputs, DATA_FORMATS)
    options = UploadOptions(workers=args.workers, md5=args.put_md5, overwrite=args.overwrite,
                            allow_any=args.allow_any, verify=args.verify, timeout=args.timeout,
                            policy=RetryPolicy(attempts=args.retries))
    bars = _Bars(args.quiet)
    try:
        with bars:
            result = upload_file(args.file, args.blob_url, options, bars.update)
    except KeyboardInterrupt:
        if bars.started:
            print("vmimage: upload interrupted: run the same command again to resume (only "
                  "what is missing is sent)", file=sys.stderr)
        raise
    if not args.quiet or outputs.files or outputs.fmt == "json":
        emit_data(lambda: _summary(result), result.to_dict, outputs)
    if result.mismatch is not None:
        from vmimage.textsafe import printable

        print(f"vmimage: {printable(result.blob)}: {result.mismatch}", file=sys.stderr)
        return 1
    return 0


def _summary(result: UploadResult) -> str:
    """What was sent, what was already there, and the Content-MD5 (and --verify's verdict)."""
    from vmimage.textsafe import printable

    state = "already complete" if result.already_complete and not result.sent_bytes else (
        "resumed" if result.resumed else "uploaded")
    lines = [f"{printable(result.blob)}: {state}; {format_size(result.sent_bytes)} sent "
             f"({format_size(result.data_bytes)} of data in {format_size(result.size)}, "
             f"{format_size(result.zero_bytes)} zero chunks skipped, "
             f"{format_size(result.present_bytes)} already there) in {result.seconds:.1f} s, "
             f"{result.retries} retries",
             f"Content-MD5: {result.content_md5 or 'not set (--put-md5 sets it)'}"]
    if result.verified:
        lines.append("verified: the stored data ranges match the file")
    return "\n".join(lines) + "\n"


class _Bars:
    """The upload's progress, then the MD5's, each a :class:`Progress` (a bar on a terminal,
    periodic lines in a log); they appear with the first report, after the file and the blob
    were checked, so a refusal prints its one line alone."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = False
        self._upload: Progress | None = None
        self._md5: Progress | None = None

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        for bar in (self._upload, self._md5):
            if bar is not None:
                bar.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, p: object) -> None:
        from vmimage.app.upload import Progress as Snapshot
        from vmimage.cli.progress import Progress

        assert isinstance(p, Snapshot)
        self.started = True
        if self._upload is None:
            self._upload = Progress("upload", p.todo, quiet=self.quiet)
        self._upload.update(p.examined, p.todo)
        if p.md5:
            if self._md5 is None:
                self._md5 = Progress("md5", p.file_size, quiet=self.quiet)
            self._md5.update(p.hashed)
