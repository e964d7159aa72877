"""``vmimage upload FILE BLOB_URL``: a VHD to a page blob, data only, resumable."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vmimage.cli.options import URL_ARG_HELP
from vmimage.errors import InputError
from vmimage.units import format_size

if TYPE_CHECKING:
    from vmimage.app.upload import UploadResult


def upload(
    file: Annotated[Path, typer.Argument(help="A fixed VHD (whole MiB, valid footer).",
                                         readable=False)],
    blob_url: Annotated[str, typer.Argument(metavar="BLOB_URL", help=URL_ARG_HELP)],
    workers: Annotated[int, typer.Option(help="Parallel Put Page requests.")] = 8,
    put_md5: Annotated[bool, typer.Option("--put-md5", help="Also hash the whole file and set "
                                          "the blob's Content-MD5 (reads every data byte "
                                          "again; as AzCopy's --put-md5).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Recreate the blob if it exists (a rerun "
                                            "without it resumes an interrupted upload).")
                         ] = False,
    allow_any: Annotated[bool, typer.Option("--allow-any", help="Upload a file that is not a "
                                            "valid fixed VHD (its length must still be a "
                                            "multiple of 512).")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Read the stored data ranges back "
                                         "and compare them with the file; exit 1 on a "
                                         "difference.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each response before "
                                           "retrying.")] = 120.0,
    retries: Annotated[int, typer.Option(help="Attempts per request on 500, 503, timeouts "
                                           "and lost connections (backoff from 0.25 s).")] = 8,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no "
                                        "summary (errors only).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> int:
    """Upload a VHD as a page blob: only data ranges, in parallel, resumable, every request
    checked by its own MD5.

    Rerun the same command after an interruption to send only what is missing.

    Credentials: a SAS in the URL, AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING,
    AZURE_STORAGE_KEY, or Entra ID (docs/storage.md).
    """
    from vmimage.app.upload import RetryPolicy, UploadOptions
    from vmimage.app.upload import upload as upload_file

    if retries < 1:
        raise InputError("--retries", "must be at least 1")
    options = UploadOptions(workers=workers, md5=put_md5, overwrite=overwrite,
                            allow_any=allow_any, verify=verify, timeout=timeout,
                            policy=RetryPolicy(attempts=retries))
    if quiet or not sys.stderr.isatty():  # a bar in a log file is noise; errors stay one line
        result = upload_file(file, blob_url, options)
    else:
        with _ProgressBar() as bar:
            result = upload_file(file, blob_url, options, bar.update)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not quiet:
        _summary(result)
    if result.mismatch is not None:
        from vmimage.report.console import printable

        print(f"vmimage: {printable(result.blob)}: {result.mismatch}", file=sys.stderr)
        return 1
    return 0


def _summary(result: UploadResult) -> None:
    """What was sent, what was already there, and the Content-MD5 (and --verify's verdict)."""
    from vmimage.report.console import console, printable

    out = console()
    state = "already complete" if result.already_complete and not result.sent_bytes else (
        "resumed" if result.resumed else "uploaded")
    out.print(f"{printable(result.blob)}: {state}; {format_size(result.sent_bytes)} sent "
              f"({format_size(result.data_bytes)} of data in {format_size(result.size)}, "
              f"{format_size(result.zero_bytes)} zero chunks skipped, "
              f"{format_size(result.present_bytes)} already there) in {result.seconds:.1f} s, "
              f"{result.retries} retries", markup=False)
    out.print(f"Content-MD5: {result.content_md5 or 'not set (--put-md5 sets it)'}",
              markup=False)
    if result.verified:
        out.print("verified: the stored data ranges match the file", markup=False)


class _ProgressBar:
    """A rich progress bar on stderr: bytes of data examined, rate, time left, then MD5.

    It appears with the first report, after the file and the blob were checked, so a refusal
    prints its one line alone.
    """

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from vmimage.report.console import console

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeRemainingColumn(),
                             console=console(stderr=True), transient=False)
        self._upload = self._bar.add_task("upload", total=None)
        self._md5: TaskID | None = None
        self._started = False

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self._bar.stop()

    def update(self, p: object) -> None:
        from vmimage.app.upload import Progress

        assert isinstance(p, Progress)
        if not self._started:
            self._bar.start()
            self._started = True
        self._bar.update(self._upload, total=p.todo, completed=p.examined)
        if p.md5:
            if self._md5 is None:
                self._md5 = self._bar.add_task("md5", total=p.file_size)
            self._bar.update(self._md5, completed=p.hashed)
