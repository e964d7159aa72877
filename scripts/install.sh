#!/usr/bin/env bash
# Install vmimage for the main job (docs/install.md):
#   1. the few system packages it needs, only those missing, with apt-get (through sudo when
#      not root; nothing prompts but sudo's own password);
#   2. a virtual environment (never the system Python: Debian 12 and Ubuntu 24.04 refuse that,
#      PEP 668) holding vmimage from this checkout, editable, so a `git pull` needs no reinstall.
# A second run installs nothing and takes well under a second.
#
#   scripts/install.sh [--extras test] [--apt "PKG..."]
#     --extras E    install vmimage[E] (scripts/install-test-deps.sh passes `test`)
#     --apt "P..."  more Debian/Ubuntu packages to install in the same apt-get run (repeatable)
#   VMIMAGE_VENV    where the virtual environment goes (default: .venv in the checkout)
#   VMIMAGE_INSTALLER=pip  install with pip only (default: uv, from the index, pip as fallback)
#
# The interpreter is `python3` on PATH; it must be 3.11 or later. When there is none, apt
# installs Debian's/Ubuntu's python3.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
checkout=$PWD

# What the main job needs from the system. Python and its venv module (python3-venv: without
# it `python3 -m venv` cannot install pip); ca-certificates for pip's HTTPS. Then what building
# the sample image takes (scripts/build-sample-image.sh, tests/imagebuild.py `sample`):
# mmdebstrap makes the Debian 12 root (in root mode it mounts /proc and /dev in it: mount),
# eatmydata is its fast hook (which asks dpkg-architecture, from dpkg-dev), zstd packs the
# cached root tarball, fdisk gives sfdisk for the partition table, e2fsprogs gives
# mkfs.ext4 -d for the root filesystem, and debian-archive-keyring verifies Debian's packages:
# on Ubuntu, whose apt does not trust that keyring, only through the signed-by option that
# mmdebstrap writes when it has gpg.
MAIN_PACKAGES=(python3 python3-venv ca-certificates mmdebstrap eatmydata dpkg-dev zstd fdisk
               e2fsprogs mount debian-archive-keyring gpg)

extras=""
extra_apt=()
while [ $# -gt 0 ]; do
  case "$1" in
    --extras) extras="${2:?--extras needs a value}"; shift 2 ;;
    --extras=*) extras="${1#*=}"; shift ;;
    --apt) read -r -a more <<<"${2:?--apt needs a value}"; extra_apt+=("${more[@]}"); shift 2 ;;
    --apt=*) read -r -a more <<<"${1#*=}"; extra_apt+=("${more[@]}"); shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install: $*" >&2; }
die() { echo "install.sh: $*" >&2; exit 1; }

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo --)
fi

# ---------------------------------------------------------------------------------------------
# 1. System packages

installed() {  # is this Debian package installed?
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

missing_among() {  # print the packages among "$@" that are not installed
  local p
  for p in "$@"; do
    installed "$p" || echo "$p"
  done
}

apt_updated=0
apt_install() {  # apt-get install the missing ones among "$@", quietly, no prompts
  local missing=()
  mapfile -t missing < <(missing_among "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get here: install these yourself if a step below needs them: ${missing[*]}"
    return 0
  fi
  if [ "${#as_root[@]}" -gt 0 ] && ! command -v sudo >/dev/null 2>&1; then
    die "these packages are missing and you are not root and have no sudo: ${missing[*]}"
  fi
  say "apt-get install ${missing[*]}${as_root:+ (with sudo)}"
  local log rc=0 t0=$SECONDS
  log=$(mktemp)
  # needrestart (Ubuntu servers) would otherwise ask which services to restart.
  local env=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l)
  local opts=(-o DPkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0 -q)
  { if [ "$apt_updated" -eq 0 ]; then
      "${as_root[@]}" "${env[@]}" apt-get update "${opts[@]}"
    fi &&
    "${as_root[@]}" "${env[@]}" apt-get install -y "${opts[@]}" --no-install-recommends \
      "${missing[@]}"; } </dev/null >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 25 "$log" >&2
    rm -f "$log"
    die "apt-get failed (exit $rc) installing: ${missing[*]}"
  fi
  rm -f "$log"
  apt_updated=1
  say "apt-get done in $((SECONDS - t0)) s"
}

have_dpkg=0
if command -v dpkg-query >/dev/null 2>&1; then
  have_dpkg=1
fi

py=$(command -v python3 || true)
if [ -z "$py" ] && [ "$have_dpkg" -eq 1 ]; then
  apt_install python3 python3-venv
  py=$(command -v python3 || true)
fi
[ -n "$py" ] || die "no python3 on PATH: install Python 3.11 or later"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  die "vmimage needs Python 3.11 or later; python3 on PATH ($py) is $("$py" -c \
'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo unknown): put a newer one first on PATH"
fi

apt_pid=""
later=()
if [ "$have_dpkg" -eq 1 ]; then
  # python3 and python3-venv belong to the distribution's Python: leave them out when python3
  # on PATH is another one (pyenv, a container's own build) that brings its own venv module.
  real=$(readlink -f "$("$py" -c 'import sys; print(sys.executable)')")
  distro_python=1
  dpkg-query -S "$real" >/dev/null 2>&1 || distro_python=0
  now=()
  for p in "${MAIN_PACKAGES[@]}" "${extra_apt[@]}"; do
    case "$p" in
      python3|python3-venv) [ "$distro_python" -eq 0 ] || now+=("$p") ;;
      ca-certificates) now+=("$p") ;;  # the venv step needs these three
      *) later+=("$p") ;;
    esac
  done
  apt_install "${now[@]}"
  mapfile -t later < <(missing_among "${later[@]}")
  if [ "${#later[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    # The rest (the sample image's tools; the test tools) installs while the venv is made:
    # about a third of a fresh install's time. In the background, sudo must not ask (-n): when
    # it would, they are installed in the foreground afterwards.
    [ "${#as_root[@]}" -eq 0 ] || as_root=(sudo -n --)
    apt_install "${later[@]}" &
    apt_pid=$!
    [ "${#as_root[@]}" -eq 0 ] || as_root=(sudo --)
    trap '[ -z "$apt_pid" ] || wait "$apt_pid" 2>/dev/null || true' EXIT
  fi
fi
"$py" -c 'import ensurepip, venv' 2>/dev/null ||
  die "$py has no venv/ensurepip module (Debian/Ubuntu: apt-get install python3-venv)"

wait_for_apt() {  # the background apt-get: done, or done again in the foreground
  [ -n "$apt_pid" ] || return 0
  local rc=0
  wait "$apt_pid" || rc=$?
  apt_pid=""
  if [ "$rc" -ne 0 ]; then
    say "the apt-get run in the background failed: once more, in the foreground"
    apt_install "${later[@]}"
  fi
}

# ---------------------------------------------------------------------------------------------
# 2. The virtual environment

venv="${VMIMAGE_VENV:-$checkout/.venv}"
case "$venv" in /*) ;; *) venv="$caller/$venv" ;; esac
stamp="$venv/.vmimage-install"
pyver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
# Reinstall when pyproject.toml (dependencies, entry points), the checkout's place or the
# Python version changes; the code itself is editable and needs none.
key=$(printf '%s\n' "$(sha256sum pyproject.toml)" "$checkout" "$pyver" | sha256sum | cut -c1-32)

has_extras() {  # has_extras HAVE WANT: is every extra of WANT (comma-separated) in HAVE?
  local have=",$1," e
  local IFS=,
  for e in $2; do
    [ -z "$e" ] || [[ "$have" == *",$e,"* ]] || return 1
  done
}

s_key="" s_extras=""
if [ -f "$stamp" ]; then
  read -r s_key s_extras <"$stamp" || true
fi
if [ "$s_key" = "$key" ] && has_extras "$s_extras" "$extras" && [ -x "$venv/bin/vmimage" ] &&
    "$venv/bin/python" -c '' 2>/dev/null; then
  wait_for_apt
  echo "vmimage is installed: $venv/bin/vmimage"
  exit 0
fi

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
  die "$venv exists and is not a virtual environment: remove it or set VMIMAGE_VENV"
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c \
    "import sys; sys.exit('%d.%d.%d' % sys.version_info[:3] != '$pyver')" 2>/dev/null; then
  say "python3 -m venv $venv ($py, Python $pyver)"
  "$py" -m venv --clear "$venv"
  s_extras=""
fi
rm -f "$stamp"
# Keep the extras an earlier run installed (a test venv stays one).
all_extras=$(printf '%s\n' "${s_extras//,/$'\n'}" "${extras//,/$'\n'}" | sed '/^$/d' | sort -u |
             paste -sd, -)
spec="."
[ -z "$all_extras" ] || spec=".[$all_extras]"
t0=$SECONDS
pip=("$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q)
installed_by=""
if [ "${VMIMAGE_INSTALLER:-uv}" = "uv" ]; then
  # uv resolves and downloads in parallel: a fresh install takes 5 s where pip takes 30-50 s
  # (Debian 12's pip 23.0 twice that). It comes from the package index like everything else
  # and stays in the venv; pip is the fallback. It reads no pip configuration: an index set
  # in PIP_INDEX_URL / PIP_EXTRA_INDEX_URL is passed on, and it trusts the system's
  # certificate store as Debian's pip does.
  say "uv pip install -e '$spec' into $venv"
  if "${pip[@]}" "uv>=0.13,<1" </dev/null &&
     env UV_SYSTEM_CERTS=1 ${PIP_INDEX_URL:+UV_DEFAULT_INDEX="$PIP_INDEX_URL"} \
         ${PIP_EXTRA_INDEX_URL:+UV_INDEX="$PIP_EXTRA_INDEX_URL"} \
       "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -e "$spec" </dev/null; then
    installed_by=uv
  else
    say "uv failed: falling back to pip"
  fi
fi
if [ -z "$installed_by" ]; then
  say "pip install -e '$spec' into $venv"
  # The pip that python3 -m venv brings may be old (Debian 12: 23.0): today's is more than
  # twice as fast, which pays for its own download.
  "${pip[@]}" --upgrade pip </dev/null
  "${pip[@]}" -e "$spec" </dev/null
  installed_by=pip
fi
"$venv/bin/vmimage" --help >/dev/null
say "$installed_by done in $((SECONDS - t0)) s"
wait_for_apt
echo "$key $all_extras" >"$stamp"
version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vmimage"))')
echo "vmimage $version is installed: $venv/bin/vmimage"
