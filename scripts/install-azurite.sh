#!/usr/bin/env bash
# Install the node tools the storage tests run (Azurite, the Azure Storage emulator) exactly as
# package-lock.json pins them. `npm ci` never resolves versions anew, so every machine and CI
# run gets the same Azurite; it is skipped when node_modules already matches the lock file.
# Only the test suite needs it (scripts/install-test-deps.sh), never the main job.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-azurite: node or npm is missing (scripts/install-test-deps.sh installs them)" >&2
  exit 1
fi
# The pinned Azurite runs on node 18 (Debian 12's nodejs, tested) and 20; 3.37 would need 22.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)'; then
  echo "install-azurite: node $(node --version) is too old for Azurite: 18 or later" >&2
  exit 1
fi
stamp=node_modules/.vmimage-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -x node_modules/.bin/azurite-blob ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
node_modules/.bin/azurite-blob --version >/dev/null
