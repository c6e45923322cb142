# Sourced by dev/test and dev/run-local: check what the machine must have, then make .venv current.
# Needs: python3 (3.11+; 3.12 preferred, as deployed), java (17+), the Cloud Firestore emulator.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

missing() { echo "missing: $1 — $2" >&2; exit 3; }

PY=""
for candidate in "${PYTHON:-}" python3.12 python3; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    PY="$candidate"; break
  fi
done
[ -n "$PY" ] || missing "python3 >= 3.11" "install it with: apt-get install python3 python3-venv"
command -v java >/dev/null 2>&1 || missing "java" "install it with: apt-get install openjdk-17-jre-headless"
if [ -z "${FIRESTORE_EMULATOR_HOST:-}" ]; then
  emulator="${FIRESTORE_EMULATOR_BIN:-}"
  if [ -z "$emulator" ] && command -v gcloud >/dev/null 2>&1; then
    sdk_root="$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null || true)"
    emulator="$sdk_root/platform/cloud-firestore-emulator/cloud_firestore_emulator"
  fi
  [ -n "$emulator" ] && [ -x "$emulator" ] || missing "the Cloud Firestore emulator" \
    "install it with: apt-get install google-cloud-cli-firestore-emulator (or: gcloud components install cloud-firestore-emulator)"
  export FIRESTORE_EMULATOR_BIN="$emulator"
fi

VENV="$ROOT/.venv"
stamp="$({ cat requirements.txt requirements-test.txt; "$PY" --version; } | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "setting up $VENV with $("$PY" --version) ..." >&2
  "$PY" -m venv --clear "$VENV" || missing "python3 venv" "install it with: apt-get install python3-venv"
  log="$VENV/pip-install.log"
  { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
    "$VENV/bin/python" -m pip install --disable-pip-version-check -r requirements-test.txt; } > "$log" 2>&1 || {
    tail -n 30 "$log" >&2; echo "pip install failed; full log: $log" >&2; exit 4; }
  echo "$stamp" > "$VENV/.requirements-stamp"
fi
export PATH="$VENV/bin:$PATH"
