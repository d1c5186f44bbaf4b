#!/usr/bin/env bash
# Offline checks of terraform/ with checkov (no Terraform binary needed).
#
# checkov lives in its own virtualenv: it vendors a python-hcl2 fork that writes
# site-packages/hcl2 in a different format than the python-hcl2 the tests use, so the two
# must never share an environment.
#
#   scripts/check_terraform.sh            # exit 0 when every check passes, non-zero otherwise
#   FN_CHECKOV_VENV=/path scripts/check_terraform.sh
set -euo pipefail

CHECKOV_VERSION="3.3.30"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FN_CHECKOV_VENV:-$HOME/.cache/fn-checkov-venv}"
python="${PYTHON:-python3}"

installed_version() {
  "$venv/bin/checkov" --version 2>/dev/null | tail -n 1 || true
}

if [[ "$(installed_version)" != "$CHECKOV_VERSION" ]]; then
  echo "check_terraform: installing checkov==$CHECKOV_VERSION into $venv" >&2
  if [[ ! -x "$venv/bin/python" ]]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
  log="$(mktemp)"
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "checkov==$CHECKOV_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "check_terraform: could not install checkov" >&2
    exit 2
  fi
  rm -f "$log"
fi

if [[ "$(installed_version)" != "$CHECKOV_VERSION" ]]; then
  echo "check_terraform: checkov in $venv does not report version $CHECKOV_VERSION" >&2
  exit 2
fi

cd "$repo_root"
echo "check_terraform: checkov $CHECKOV_VERSION on terraform/" >&2
# checkov exits 1 when a check fails; set -e passes that on.
"$venv/bin/checkov" -d terraform --config-file terraform/.checkov.yaml
