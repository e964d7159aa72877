#!/usr/bin/env bash
# Install the test dependencies, then run lint, types and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
ruff check src tests bench
mypy
lint-imports --no-cache  # the layers of docs/architecture.md (pyproject.toml)
set +e
python3 -m pytest -n 2 -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
