#!/usr/bin/env bash
# The vmimage action's last step: fail the job per the exit code check.sh recorded.
# The check step runs with continue-on-error so that the reports are uploaded first; this
# step then passes or fails the job.
#   VMIMAGE_EXIT_CODE  the check step's exit-code output (empty: check.sh stopped early)
#   VMIMAGE_VERDICT    its verdict output
#   INPUT_FAIL_ON      the fail-on input, for the message
set -euo pipefail
code="${VMIMAGE_EXIT_CODE:-}"
verdict="${VMIMAGE_VERDICT:-error}"
fail_on="${INPUT_FAIL_ON:-fail}"
annotate=false
[ "${GITHUB_ACTIONS:-}" = "true" ] && annotate=true

if ! [[ "$code" =~ ^[0-9]+$ ]]; then
  msg="vmimage check did not run: see the log of the action's check step"
  code=3
elif [ "$code" -eq 0 ]; then
  echo "vmimage: verdict $verdict, nothing at or above fail-on $fail_on"
  exit 0
elif [ "$code" -eq 1 ]; then
  msg="vmimage: verdict $verdict; a finding at or above fail-on $fail_on (see the report)"
else
  msg="vmimage could not check the image (exit $code, verdict $verdict): see the check step"
fi
if "$annotate"; then echo "::error title=vmimage::$msg"; fi
echo "$msg" >&2
exit "$code"
