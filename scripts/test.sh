#!/usr/bin/env bash
# Install the test dependencies (scripts/install-test-deps.sh), then run lint, types and the
# whole test suite with the tools of the virtual environment (.venv, or $VMIMAGE_VENV). Its
# bin/ comes first on PATH, so that a test which runs `vmimage` or `python3` gets that one.
#   ./scripts/test.sh [pytest arguments...]
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
venv="${VMIMAGE_VENV:-$PWD/.venv}"
case "$venv" in /*) ;; *) venv="$caller/$venv" ;; esac
export VMIMAGE_VENV="$venv"
./scripts/install-test-deps.sh
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
"$venv/bin/ruff" check src tests bench
"$venv/bin/mypy"
"$venv/bin/lint-imports" --no-cache  # the layers of docs/architecture.md (pyproject.toml)
set +e
"$venv/bin/python" -m pytest -n 2 -q "$@" </dev/null
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
