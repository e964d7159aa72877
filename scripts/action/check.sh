#!/usr/bin/env bash
# The logic of the vmimage GitHub Action (action.yml): install vmimage, check one disk image,
# write the reports and the step's outputs. Plain bash, so that CI runs it exactly as the
# runner does, without the Actions runtime (tests/test_action.py).
#
# Inputs, from the environment (action.yml maps each action input to one of these):
#   INPUT_IMAGE            required: a disk image (raw, VHD, VHDX, qcow2, VMDK) or a directory
#                          holding a root filesystem, as `vmimage check` takes it
#   INPUT_PROFILE          azure-current (default), azure-2015, or a .toml profile file
#   INPUT_ROLE             os-linux (default) or data
#   INPUT_FAIL_ON          fail (default) or warning: the level that makes the exit status 1
#   INPUT_WAIVERS          a waiver file (optional)
#   INPUT_VMIMAGE_VERSION  what to install, as pip takes it: "vmimage==0.2.0", a bare version
#                          ("0.2.0" means vmimage==0.2.0), a URL or a path. Empty (default):
#                          the action's own checkout, $GITHUB_ACTION_PATH
#   INPUT_OUTPUT_DIR       where the reports go (default: $RUNNER_TEMP/vmimage-report)
# and the runner's own variables:
#   GITHUB_ACTION_PATH     the action's checkout (default: the repository holding this script)
#   GITHUB_OUTPUT          file receiving the outputs as key=value lines (optional)
#   GITHUB_STEP_SUMMARY    file receiving a markdown summary (optional)
#   RUNNER_TEMP            scratch space (default: a new temporary directory)
#   GITHUB_ACTIONS         "true" on a runner: log groups and ::error:: annotations
# and two of ours:
#   VMIMAGE_PYTHON         the interpreter that makes the virtual environment (default
#                          python3; 3.11 or later)
#   VMIMAGE_VENV           the virtual environment (default $RUNNER_TEMP/vmimage-venv). One this
#                          script made for the same requirement is reused; one it made for
#                          another is remade; an existing venv that it did not make but that
#                          holds vmimage is used as it is.
#
# Writes vmimage.sarif, vmimage.html, vmimage.junit.xml and vmimage.json into the output
# directory, from one run of `vmimage check`.
# Outputs: verdict (pass, incomplete or fail, as the JSON report's summary says; error when
# the image could not be checked or vmimage not installed), exit-code, report-dir,
# vmimage-path (the installed executable, for later steps such as `vmimage upload`), and
# sarif-file, html-file, junit-file, json-file for the files written.
# Exit status: vmimage check's own (0 nothing at or above --fail-on, 1 a rule failed or, with
# fail-on warning, warned, 2 unusable input), or 3 when vmimage could not be installed.
# Nothing secret is printed: a SAS signature or the password of a user:password@ in the
# image's URL is redacted.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
on_runner=false
[ "${GITHUB_ACTIONS:-}" = "true" ] && on_runner=true

redact() {  # stdin -> stdout: SAS signatures and URL credentials replaced
  sed -E -e 's/([?&]sig=)[^&[:space:]"]*/\1REDACTED/g' \
         -e 's#(://[^/@:[:space:]"]*:)[^/@[:space:]"]+@#\1REDACTED@#g'
}

error() {  # one line on stderr (and an annotation on a runner)
  local msg
  msg="$(printf '%s' "$*" | redact)"
  if "$on_runner"; then
    printf '::error title=vmimage::%s\n' "$msg"
  fi
  printf 'vmimage action: %s\n' "$msg" >&2
}

group() { if "$on_runner"; then echo "::group::$*"; else echo "== $*"; fi; }
endgroup() { if "$on_runner"; then echo "::endgroup::"; fi; }

output() {  # key value: one line of $GITHUB_OUTPUT (values never hold a newline)
  case "$2" in *$'\n'*) error "output $1 holds a newline"; exit 3 ;; esac
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf '%s=%s\n' "$1" "$2" >> "$GITHUB_OUTPUT"
  fi
}

summary() {  # append stdin to the step summary, if there is one
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat >> "$GITHUB_STEP_SUMMARY"
  else
    cat > /dev/null
  fi
}

give_up() {  # exit-code message: vmimage did not run; record that and stop
  error "$2"
  output verdict error
  output exit-code "$1"
  printf '### vmimage check: error\n\n%s\n' "$(printf '%s' "$2" | redact)" | summary
  exit "$1"
}

# ------------------------------------------------------------------------------------------
# Inputs

image="${INPUT_IMAGE:-}"
profile="${INPUT_PROFILE:-azure-current}"
role="${INPUT_ROLE:-os-linux}"
fail_on="${INPUT_FAIL_ON:-fail}"
waivers="${INPUT_WAIVERS:-}"
requirement="${INPUT_VMIMAGE_VERSION:-}"
action_path="${GITHUB_ACTION_PATH:-$(cd "$here/../.." && pwd)}"

[ -n "$image" ] || give_up 2 "the image input is empty: name a disk image to check"

if [ -z "${RUNNER_TEMP:-}" ]; then
  RUNNER_TEMP="$(mktemp -d "${TMPDIR:-/tmp}/vmimage-action.XXXXXX")"
fi
mkdir -p "$RUNNER_TEMP"
out_dir="${INPUT_OUTPUT_DIR:-$RUNNER_TEMP/vmimage-report}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
venv="${VMIMAGE_VENV:-$RUNNER_TEMP/vmimage-venv}"
python="${VMIMAGE_PYTHON:-python3}"

# ------------------------------------------------------------------------------------------
# Install vmimage into its own virtual environment

if [ -z "$requirement" ]; then
  [ -f "$action_path/pyproject.toml" ] || give_up 3 "$action_path holds no pyproject.toml: set vmimage-version"
  spec="source:$action_path"
elif [[ "$requirement" =~ ^[0-9][0-9A-Za-z.+!-]*$ ]]; then
  spec="pip:vmimage==$requirement"
else
  spec="pip:$requirement"
fi

install_vmimage() {
  command -v "$python" > /dev/null || give_up 3 "no $python to make a virtual environment with"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || give_up 3 "$python is older than Python 3.11, which vmimage needs"
  "$python" -m venv "$venv" || give_up 3 "cannot make a virtual environment in $venv"
  local pip=("$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q)
  if [ "${spec%%:*}" = source ]; then
    # Build from a clean copy of what a build reads: the checkout's own build/ or *.egg-info
    # (left by an earlier build) would otherwise slip stale modules into the wheel.
    local copy
    copy="$(mktemp -d "$RUNNER_TEMP/vmimage-source.XXXXXX")"
    local f
    for f in pyproject.toml setup.py setup.cfg MANIFEST.in README.md README.rst LICENSE; do
      if [ -e "$action_path/$f" ]; then cp -p "$action_path/$f" "$copy/"; fi
    done
    tar -C "$action_path" --exclude=__pycache__ --exclude='*.egg-info' -cf - src \
      | tar -C "$copy" -xf -
    "${pip[@]}" "$copy" || give_up 3 "pip could not install vmimage from $action_path"
    rm -rf "$copy"
  else
    "${pip[@]}" "${spec#pip:}" || give_up 3 "pip could not install '${spec#pip:}'"
  fi
  printf '%s\n' "$spec" > "$venv/.vmimage-action"
}

group "Install vmimage ($spec)"
if [ -f "$venv/.vmimage-action" ] && [ "$(cat "$venv/.vmimage-action")" = "$spec" ] \
    && [ -x "$venv/bin/vmimage" ]; then
  echo "reusing $venv"
elif [ -f "$venv/.vmimage-action" ]; then
  echo "$venv holds another vmimage: making it again"
  rm -rf "$venv"
  install_vmimage
elif [ -x "$venv/bin/vmimage" ] && [ -f "$venv/pyvenv.cfg" ]; then
  echo "using the vmimage already installed in $venv"
elif [ -e "$venv" ] && [ -n "$(ls -A "$venv")" ]; then
  give_up 3 "$venv exists and is not a virtual environment holding vmimage"
else
  install_vmimage
fi
"$venv/bin/vmimage" --version || give_up 3 "the vmimage installed in $venv does not start"
output vmimage-path "$venv/bin/vmimage"
endgroup

# ------------------------------------------------------------------------------------------
# Check

sarif="$out_dir/vmimage.sarif"
html="$out_dir/vmimage.html"
junit="$out_dir/vmimage.junit.xml"
json="$out_dir/vmimage.json"
rm -f "$sarif" "$html" "$junit" "$json"  # a stale report must never stand for this run

args=(check "$image" --profile "$profile" --role "$role" --fail-on "$fail_on"
      --output "$sarif" --output "$html" --output "$junit" --output "$json")
if [ -n "$waivers" ]; then args+=(--waivers "$waivers"); fi

# Through the redactor on the way to the log (vmimage redacts too: this is the second belt).
said="$RUNNER_TEMP/vmimage-stdout.txt"
errors="$RUNNER_TEMP/vmimage-stderr.txt"
set +e
"$venv/bin/vmimage" "${args[@]}" > "$said" 2> "$errors"
code=$?
set -e
redact < "$said"
redact < "$errors" >&2

if [ -s "$json" ]; then
  verdict="$("$venv/bin/python" -c \
    'import json, sys; print(json.load(open(sys.argv[1], encoding="utf-8"))["summary"]["verdict"])' \
    "$json")"
else
  verdict=error
fi
if [ "$code" -ge 2 ]; then
  verdict=error
  if "$on_runner"; then  # vmimage's one line, already in the log, as an annotation too
    printf '::error title=vmimage::%s\n' "$(tail -n 1 "$errors" | redact)"
  fi
fi

output verdict "$verdict"
output exit-code "$code"
output report-dir "$out_dir"
for pair in "sarif-file=$sarif" "html-file=$html" "junit-file=$junit" "json-file=$json"; do
  if [ -s "${pair#*=}" ]; then output "${pair%%=*}" "${pair#*=}"; fi
done

# The step summary: the verdict line, the counts, and every rule at or above --fail-on.
if [ -s "$json" ]; then
  "$venv/bin/python" - "$json" "$fail_on" "$code" << 'EOF' | redact | summary
import json
import sys

report = json.load(open(sys.argv[1], encoding="utf-8"))
fail_on, code = sys.argv[2], int(sys.argv[3])
s = report["summary"]
levels = ("fail", "warning") if fail_on == "warning" else ("fail",)
print(f"### vmimage check: {s['verdict']}\n")
print(s["verdict_line"].replace("|", "\\|") + "\n")
outcome = "nothing at or above it" if code == 0 else "the job fails"
print(f"Profile {report['profile']}, fail-on {fail_on}: exit {code}, {outcome}.\n")
print("| pass | fail | warning | skip |")
print("|---:|---:|---:|---:|")
c = s["counts"]
print(f"| {c.get('pass', 0)} | {c.get('fail', 0)} | {c.get('warning', 0)} | {c.get('skip', 0)} |")
shown = sorted((f for f in report["findings"] if f["status"] in levels),
               key=lambda f: f["status"] != "fail")  # failures first, in report order
if shown:
    print("\n| rule | status | finding |")
    print("|---|---|---|")
    for f in shown:
        message = " ".join(str(f["message"]).split()).replace("|", "\\|")
        status = f"{f['status']} (waived)" if f.get("waiver") else f["status"]
        print(f"| `{f['check_id']}` | {status} | {message} |")
EOF
else
  printf '### vmimage check: error\n\n%s\n' "$(tail -n 1 "$errors")" | redact | summary
fi

exit "$code"
