#!/usr/bin/env bash
# Runs kha-deploy's tests on node's own test runner (TypeScript through tsx).
#   bash test/run.sh unit   tests outside test/e2e; no Docker needed
#   bash test/run.sh e2e    test/e2e/*.test.ts against the lab (brought up with lab/up.sh first)
#   bash test/run.sh all    both, in one run of the runner (one summary)       [npm test]
# Node 20's --test does not expand globs and finds no .ts file by itself, so the file list is
# made here, and a suite that finds no file fails. Files run one at a time (e2e tests share the
# lab). With CI=true, a lab that cannot be brought up is a failure, never a skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
suite=${1:-all}
shift || true

unit_files() { find test -path test/e2e -prune -o -path '*/node_modules' -prune -o -type f -name '*.test.ts' -print | sort; }
e2e_files() { find test/e2e -type f -name '*.test.ts' 2>/dev/null | sort; }
say() { printf '[test/run.sh] %s\n' "$*" >&2; }

files=()
case "$suite" in
  unit) mapfile -t files < <(unit_files) ;;
  e2e) mapfile -t files < <(e2e_files) ;;
  all) mapfile -t files < <(unit_files; e2e_files) ;;
  *) say "usage: bash test/run.sh unit|e2e|all"; exit 2 ;;
esac
if ((${#files[@]} == 0)); then
  say "ERROR: found no $suite test file (*.test.ts); refusing to report a run with no test"
  exit 1
fi

if [[ "$suite" != unit ]]; then
  mapfile -t e2e < <(e2e_files)
  if ((${#e2e[@]} == 0)); then
    say "ERROR: found no e2e test file in test/e2e"
    exit 1
  fi
  t0=$(date +%s)
  if bash lab/up.sh; then
    say "lab up in $(($(date +%s) - t0)) s"
  elif [[ "${CI:-}" == true || "$suite" == e2e ]]; then
    # The e2e files still run: their requireLab() fails each suite loudly, so the summary shows it.
    say "ERROR: THE LAB DID NOT COME UP: e2e tests will fail"
    lab_failed=1
  else
    say "WARNING: THE LAB DID NOT COME UP (not in CI): running unit tests only; E2E TESTS SKIPPED"
    mapfile -t files < <(unit_files)
    ((${#files[@]})) || { say "ERROR: found no unit test file"; exit 1; }
  fi
fi

say "node --test: ${#files[@]} file(s)"
rc=0
node --import tsx --test --test-concurrency=1 --test-timeout="${TEST_TIMEOUT_MS:-600000}" "$@" "${files[@]}" || rc=$?
if [[ -n "${lab_failed:-}" && $rc -eq 0 ]]; then rc=1; fi
# A failed e2e run ends with the lab's network state: the cause of a split brain is often there.
if [[ $rc -ne 0 && "$suite" != unit ]]; then bash lab/diagnose.sh || true; fi
exit "$rc"
