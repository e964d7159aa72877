"""The long fuzz run, by hand: the Hypothesis fuzzers with many examples, then Atheris (coverage-
guided, libFuzzer) on the byte parsers where it installs.

    python3 bench/fuzz.py [--examples 5000] [--atheris-seconds 300] [--only NAME]

CI runs the same Hypothesis fuzzers briefly (tests/test_fuzz_*.py, a few hundred examples);
this script is for finding what a short run misses. A crash prints the input that caused it;
turn it into a regression test. Atheris: ``pip install atheris``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _vhd_footer(data: bytes) -> None:
    from vmimage.disk import vhd

    footer = vhd.Footer.unpack(data[:512].ljust(512, b"\0"))
    if footer is not None:
        footer.problems()


def _blob_url(data: bytes) -> None:
    from vmimage.bloburl import parse_lenient, parse_strict

    text = data.decode("utf-8", "replace")
    parse_lenient(text)
    parse_strict(text)


def _manifest(data: bytes) -> None:
    from vmimage.offer.manifest import parse_manifest

    parse_manifest(data.decode("utf-8", "replace"), Path("fuzz.yaml"))


def _fstab(data: bytes) -> None:
    from vmimage.targets.fstab import parse_fstab

    parse_fstab(data.decode("utf-8", "replace"))


def _size(data: bytes) -> None:
    from vmimage.units import parse_size

    with contextlib.suppress(ValueError):  # parse_size's documented refusal
        parse_size(data.decode("utf-8", "replace"))


#: name -> one input's harness; an exception other than the typed error is a finding.
TARGETS: dict[str, Callable[[bytes], None]] = {
    "vhd-footer": _vhd_footer,
    "blob-url": _blob_url,
    "manifest": _manifest,
    "fstab": _fstab,
    "size": _size,
}


def _atheris_child(name: str, seconds: int) -> None:
    import atheris  # type: ignore[import-not-found]

    from vmimage.errors import VmimageError

    target = TARGETS[name]

    def one(data: bytes) -> None:
        with contextlib.suppress(VmimageError):
            target(data)

    with atheris.instrument_imports(include=["vmimage"]):
        import vmimage.bloburl
        import vmimage.disk.vhd
        import vmimage.offer.manifest
        import vmimage.targets.fstab
        import vmimage.units  # noqa: F401 - instrumented for coverage guidance

    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-rss_limit_mb=2048",
                   "-timeout=10"], one)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--atheris-seconds", type=int, default=300)
    parser.add_argument("--only", choices=sorted(TARGETS))
    parser.add_argument("--atheris-target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.atheris_target:
        _atheris_child(args.atheris_target, args.atheris_seconds)
        return 0
    rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
                         *sorted(str(p) for p in (ROOT / "tests").glob("test_fuzz_*.py"))],
                        cwd=ROOT, env={**os.environ, "VMIMAGE_FUZZ_EXAMPLES": str(args.examples)},
                        check=False).returncode
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("atheris is not installed: the coverage-guided run is skipped", file=sys.stderr)
        return rc
    for name in [args.only] if args.only else sorted(TARGETS):
        print(f"atheris: {name}, {args.atheris_seconds} s", file=sys.stderr)
        rc |= subprocess.run([sys.executable, __file__, "--atheris-target", name,
                              "--atheris-seconds", str(args.atheris_seconds)], cwd=ROOT,
                             check=False).returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
