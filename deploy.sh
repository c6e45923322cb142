#!/usr/bin/env bash
# Deploy the story backend to Google Cloud from this source tree:
#   - the Firestore composite index the story listing query needs,
#   - the logs-based metrics built from the functions' structured log lines,
#   - the three Cloud Functions (2nd gen): story, interaction, persistence_metrics.
# Safe to re-run: the index and the metrics are created when absent and left/updated otherwise,
# and `gcloud functions deploy` creates or updates. Run `./deploy.sh --help` for the options.
set -euo pipefail

readonly RUNTIME="python312"
readonly METRICS=(story_write_outcomes story_write_ms story_read_ms story_commit_lag_ms story_entries_persisted)
readonly STORY_PATH_PATTERN='users/{uid}/campaigns/{campaignId}/story/{docId}'

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [options]

Deploys the functions story, interaction and persistence_metrics (Cloud Functions 2nd gen, python312,
source = this directory), the Firestore composite index on the `story` collection group
(part ascending, timestamp descending) and the logs-based metrics story_write_outcomes,
story_write_ms, story_read_ms, story_commit_lag_ms and story_entries_persisted.

Options (each falls back to the environment variable named after it):
  --project ID               Google Cloud project (GOOGLE_CLOUD_PROJECT). Required.
  --region REGION            functions region (REGION, default us-central1)
  --database NAME            Firestore database (FIRESTORE_DATABASE, default "(default)")
  --database-location LOC    the database's location, used as the Firestore trigger location
                             (DATABASE_LOCATION; default: looked up with
                             `gcloud firestore databases describe`)
  --allowed-origins LIST     comma-separated browser origins allowed by CORS (ALLOWED_ORIGINS)
  --storyteller KIND         gemini or local (STORYTELLER, default gemini)
  --gemini-model MODEL       Gemini model name (GEMINI_MODEL; default: the code's default)
  --gemini-secret NAME       Secret Manager secret holding the Gemini API key, mounted as
                             GEMINI_API_KEY into `interaction` (GEMINI_SECRET, default gemini-api-key)
  --only PART[,PART...]      deploy only these parts: story, interaction, persistence_metrics,
                             metrics, index
  --dry-run                  print every command and config file instead of running anything
  -h, --help                 show this help

Environment only:
  ENABLE_WRITE_THEN_READ           true|false (default true): the read-back after every write
  METRICS_MAX_EVENT_AGE_SECONDS    persistence_metrics drops older events (default 3600)

The Gemini API key itself is never passed on the command line: the functions read it from Secret
Manager. Refuses to run while FIRESTORE_EMULATOR_HOST or FIREBASE_AUTH_EMULATOR_HOST is set.
EOF
}

die() {  # die EXIT_CODE MESSAGE
  printf 'deploy.sh: %s\n' "$2" >&2
  exit "$1"
}

warn() {
  printf 'deploy.sh: warning: %s\n' "$1" >&2
}

# --- inputs -------------------------------------------------------------------------------------

project="${GOOGLE_CLOUD_PROJECT:-}"
region="${REGION:-us-central1}"
database="${FIRESTORE_DATABASE:-(default)}"
database_location="${DATABASE_LOCATION:-}"
allowed_origins="${ALLOWED_ORIGINS:-}"
storyteller="${STORYTELLER:-gemini}"
gemini_model="${GEMINI_MODEL:-}"
gemini_secret="${GEMINI_SECRET:-gemini-api-key}"
enable_write_then_read="${ENABLE_WRITE_THEN_READ:-true}"
metrics_max_event_age_seconds="${METRICS_MAX_EVENT_AGE_SECONDS:-3600}"
only=""
dry_run=0
# DEPLOY_KEEP_GOING=1 is for the offline command check in tests/test_deploy.py only: every command
# is tried even when an earlier one failed, and where a choice depends on a failed lookup, every
# branch is tried. The run still exits non-zero when anything failed.
keep_going="${DEPLOY_KEEP_GOING:-0}"

while (($# > 0)); do
  opt="$1"
  case "$opt" in
    -h | --help)
      usage
      exit 0
      ;;
    --dry-run)
      dry_run=1
      shift
      continue
      ;;
    --*=*)
      value="${opt#*=}"
      opt="${opt%%=*}"
      shift
      ;;
    --*)
      (($# >= 2)) || die 2 "option $opt needs a value (see --help)"
      value="$2"
      shift 2
      ;;
    *)
      die 2 "unexpected argument: $opt (see --help)"
      ;;
  esac
  case "$opt" in
    --project) project="$value" ;;
    --region) region="$value" ;;
    --database) database="$value" ;;
    --database-location) database_location="$value" ;;
    --allowed-origins) allowed_origins="$value" ;;
    --storyteller) storyteller="$value" ;;
    --gemini-model) gemini_model="$value" ;;
    --gemini-secret) gemini_secret="$value" ;;
    --only) only="$value" ;;
    *) die 2 "unknown option: $opt (see --help)" ;;
  esac
done

for var in FIRESTORE_EMULATOR_HOST FIREBASE_AUTH_EMULATOR_HOST; do
  if [[ -n "${!var+set}" ]]; then
    die 2 "refusing to deploy: $var is set (emulator settings must never reach a cloud deploy); unset it and re-run"
  fi
done

[[ -n "$project" ]] || die 2 "no project: pass --project PROJECT_ID or set GOOGLE_CLOUD_PROJECT"
[[ "$project" =~ ^[a-z0-9.:-]+$ ]] || die 2 "invalid project id: $project"
[[ "$region" =~ ^[a-z0-9-]+$ ]] || die 2 "invalid region: $region"
[[ -n "$database" && "$database" != *[[:space:]]* ]] || die 2 "invalid database name: '$database'"
[[ -z "$database_location" || "$database_location" =~ ^[a-z0-9-]+$ ]] ||
  die 2 "invalid database location: $database_location"
case "$storyteller" in
  gemini | local) ;;
  *) die 2 "--storyteller must be gemini or local, not '$storyteller'" ;;
esac
case "$enable_write_then_read" in
  true | false) ;;
  *) die 2 "ENABLE_WRITE_THEN_READ must be true or false, not '$enable_write_then_read'" ;;
esac
[[ "$metrics_max_event_age_seconds" =~ ^[1-9][0-9]*$ ]] ||
  die 2 "METRICS_MAX_EVENT_AGE_SECONDS must be a positive whole number, not '$metrics_max_event_age_seconds'"
[[ "$allowed_origins" != *[[:space:]]* ]] || die 2 "--allowed-origins must not contain spaces"
[[ "$gemini_model" != *[[:space:]]* ]] || die 2 "--gemini-model must not contain spaces"
# A secret *name* (or projects/P/secrets/NAME), never a key: Gemini API keys start with "AIza".
if [[ ! "$gemini_secret" =~ ^[A-Za-z0-9_/-]+$ || "$gemini_secret" == AIza* ]]; then
  die 2 "--gemini-secret takes the name of a Secret Manager secret (e.g. gemini-api-key), not a key"
fi

want_index=1 want_metrics=1 want_story=1 want_interaction=1 want_persistence_metrics=1
if [[ -n "$only" ]]; then
  want_index=0 want_metrics=0 want_story=0 want_interaction=0 want_persistence_metrics=0
  IFS=',' read -r -a parts <<<"$only"
  for part in "${parts[@]}"; do
    case "$part" in
      index) want_index=1 ;;
      metrics) want_metrics=1 ;;
      story) want_story=1 ;;
      interaction) want_interaction=1 ;;
      persistence_metrics) want_persistence_metrics=1 ;;
      *) die 2 "--only takes story, interaction, persistence_metrics, metrics or index, not '$part'" ;;
    esac
  done
fi

if [[ -n "${GEMINI_API_KEY:-}" ]]; then
  warn "GEMINI_API_KEY in this shell is ignored: the functions read it from Secret Manager ($gemini_secret)"
fi
if [[ -z "$allowed_origins" ]] && ((want_story || want_interaction)); then
  warn "no --allowed-origins: browsers will only be allowed from http://localhost and http://127.0.0.1"
fi
if ((!dry_run)) && ! command -v gcloud >/dev/null 2>&1; then
  die 2 "gcloud not found on PATH (install the Google Cloud CLI)"
fi

# The source tree is this script's directory, whatever the caller's working directory.
cd "$(dirname "${BASH_SOURCE[0]}")"

workdir="$(mktemp -d "${TMPDIR:-/tmp}/deploy.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT

# --- running commands ---------------------------------------------------------------------------

failures=()

render() {  # the command line, shell-quoted
  local line
  printf -v line '%q ' "$@"
  printf '%s\n' "${line% }"
}

note_failure() {  # note_failure RC COMMAND...: exit, or remember the failure in keep-going mode
  local rc="$1"
  shift
  if [[ "$keep_going" == 1 ]]; then
    failures+=("$(render "$@")")
    return 0
  fi
  printf 'deploy.sh: failed (exit %s): %s\n' "$rc" "$(render "$@")" >&2
  exit "$rc"
}

run() {  # run COMMAND...: print it, and run it unless in dry-run mode
  if ((dry_run)); then
    render "$@"
    return 0
  fi
  printf '+ %s\n' "$(render "$@")" >&2
  local rc=0
  "$@" || rc=$?
  ((rc == 0)) || note_failure "$rc" "$@"
}

show_file() {  # in dry-run mode, print a generated config file
  ((dry_run)) || return 0
  printf '# --- %s ---\n' "$1"
  sed 's/^/# /' "$1"
  printf '# --- end ---\n'
}

project_flag="--project=$project"

# --- Firestore composite index --------------------------------------------------------------------

index_cmd=(gcloud firestore indexes composite create
  "$project_flag"
  --database="$database"
  --collection-group=story
  --query-scope=collection
  '--field-config=field-path=part,order=ascending'
  '--field-config=field-path=timestamp,order=descending')

deploy_index() {
  if ((dry_run)); then
    printf '# Firestore composite index (an "already exists" answer counts as success):\n'
    render "${index_cmd[@]}"
    return 0
  fi
  printf '+ %s\n' "$(render "${index_cmd[@]}")" >&2
  printf 'deploy.sh: creating the index waits until it is built (a few minutes on a large database)\n' >&2
  local rc=0
  "${index_cmd[@]}" >"$workdir/index.out" 2>"$workdir/index.err" || rc=$?
  cat "$workdir/index.out"
  if ((rc != 0)) && grep -qi 'already.exists' "$workdir/index.err"; then
    printf 'deploy.sh: the story index already exists\n' >&2
    return 0
  fi
  cat "$workdir/index.err" >&2
  ((rc == 0)) || note_failure "$rc" "${index_cmd[@]}"
}

# --- logs-based metrics ---------------------------------------------------------------------------

# Gen2 functions run on Cloud Run: their stdout JSON lines arrive as jsonPayload on this resource.
readonly WRITE_FILTER='resource.type="cloud_run_revision" AND jsonPayload.event="story_write"'
readonly PERSISTED_FILTER='resource.type="cloud_run_revision" AND jsonPayload.event="story_entry_persisted"'

# 64 exponential buckets from 1 ms growing by 25%: about +-12% resolution up to ~27 minutes.
readonly MS_BUCKETS='bucketOptions:
  exponentialBuckets:
    numFiniteBuckets: 64
    growthFactor: 1.25
    scale: 1'

label() {  # label KEY DESCRIPTION: one metricDescriptor label, YAML
  printf '  - key: %s\n    valueType: STRING\n    description: %s\n' "$1" "$2"
}

readonly FUNCTION_LABEL_DESC="'the function that logged the line: story or interaction'"
readonly OUTCOME_LABEL_DESC="'verified, unverified, replayed or failed'"

write_metric_configs() {
  cat >"$workdir/story_write_outcomes.yaml" <<EOF
description: Story entry writes by outcome (verified, unverified, replayed, failed) and function.
filter: '$WRITE_FILTER'
labelExtractors:
  outcome: EXTRACT(jsonPayload.outcome)
  function: EXTRACT(jsonPayload.function)
metricDescriptor:
  metricKind: DELTA
  valueType: INT64
  unit: '1'
  labels:
$(label outcome "$OUTCOME_LABEL_DESC")
$(label function "$FUNCTION_LABEL_DESC")
EOF

  local kind
  for kind in write read; do
    cat >"$workdir/story_${kind}_ms.yaml" <<EOF
description: Milliseconds the Firestore ${kind} of a story entry took (jsonPayload.${kind}_ms of story_write lines).
filter: '$WRITE_FILTER AND jsonPayload.${kind}_ms>=0'
valueExtractor: EXTRACT(jsonPayload.${kind}_ms)
labelExtractors:
  function: EXTRACT(jsonPayload.function)
  outcome: EXTRACT(jsonPayload.outcome)
metricDescriptor:
  metricKind: DELTA
  valueType: DISTRIBUTION
  unit: ms
  labels:
$(label function "$FUNCTION_LABEL_DESC")
$(label outcome "$OUTCOME_LABEL_DESC")
$MS_BUCKETS
EOF
  done

  cat >"$workdir/story_commit_lag_ms.yaml" <<EOF
description: Milliseconds from the start of the request to the Firestore commit of each stored entry.
filter: '$PERSISTED_FILTER AND jsonPayload.commit_lag_ms>=0'
valueExtractor: EXTRACT(jsonPayload.commit_lag_ms)
labelExtractors:
  actor: EXTRACT(jsonPayload.actor)
metricDescriptor:
  metricKind: DELTA
  valueType: DISTRIBUTION
  unit: ms
  labels:
$(label actor "'who wrote the entry: user or gemini'")
$MS_BUCKETS
EOF

  cat >"$workdir/story_entries_persisted.yaml" <<EOF
description: Story entries stored in Firestore, counted once per entry by the persistence_metrics function.
filter: '$PERSISTED_FILTER'
labelExtractors:
  actor: EXTRACT(jsonPayload.actor)
metricDescriptor:
  metricKind: DELTA
  valueType: INT64
  unit: '1'
  labels:
$(label actor "'who wrote the entry: user or gemini'")
EOF
}

deploy_metrics() {
  write_metric_configs
  local list_cmd=(gcloud logging metrics list "$project_flag" --format='value(name)')
  local name file existing="" listed=1
  if ((dry_run)); then
    printf '# Logs-based metrics: each is updated when the list below names it, else created.\n'
    render "${list_cmd[@]}"
  else
    printf '+ %s\n' "$(render "${list_cmd[@]}")" >&2
    local rc=0
    existing="$("${list_cmd[@]}")" || rc=$?
    if ((rc != 0)); then
      note_failure "$rc" "${list_cmd[@]}"
      listed=0  # keep-going mode: the lookup failed, so try both create and update below
    fi
  fi
  for name in "${METRICS[@]}"; do
    file="$workdir/$name.yaml"
    show_file "$file"
    if ((dry_run || !listed)); then
      run gcloud logging metrics create "$name" "$project_flag" --config-from-file="$file"
      run gcloud logging metrics update "$name" "$project_flag" --config-from-file="$file"
    elif grep -qxF "$name" <<<"$existing"; then
      run gcloud logging metrics update "$name" "$project_flag" --config-from-file="$file"
    else
      run gcloud logging metrics create "$name" "$project_flag" --config-from-file="$file"
    fi
  done
}

# --- functions ------------------------------------------------------------------------------------

# --set-env-vars with gcloud's alternate delimiter syntax (`gcloud topic escaping`), because
# ALLOWED_ORIGINS holds commas: the delimiter is one that appears in no value.
env_vars_flag() {
  local pairs=(
    "GOOGLE_CLOUD_PROJECT=$project"
    "FIRESTORE_DATABASE=$database"
    "ENABLE_WRITE_THEN_READ=$enable_write_then_read"
    "STORYTELLER=$storyteller"
    "METRICS_MAX_EVENT_AGE_SECONDS=$metrics_max_event_age_seconds"
  )
  [[ -z "$allowed_origins" ]] || pairs+=("ALLOWED_ORIGINS=$allowed_origins")
  [[ -z "$gemini_model" ]] || pairs+=("GEMINI_MODEL=$gemini_model")
  local all delim joined pair
  all="$(printf '%s\n' "${pairs[@]}")"
  for delim in '@' '|' ';' '~' '#' '@@@'; do
    [[ "$all" != *"$delim"* ]] || continue
    joined=""
    for pair in "${pairs[@]}"; do
      joined+="${joined:+$delim}$pair"
    done
    printf -- '--set-env-vars=^%s^%s\n' "$delim" "$joined"
    return 0
  done
  die 2 "cannot find a delimiter for --set-env-vars: the settings contain @, |, ;, ~ and #"
}

deploy_function() {  # deploy_function NAME EXTRA_FLAGS...
  local name="$1"
  shift
  run gcloud functions deploy "$name" \
    "$project_flag" \
    --gen2 \
    --runtime="$RUNTIME" \
    --region="$region" \
    --source=. \
    --entry-point="$name" \
    "$env_vars" \
    "$@"
}

resolve_database_location() {
  [[ -z "$database_location" ]] || return 0
  local cmd=(gcloud firestore databases describe "$project_flag" --database="$database"
    --format='value(locationId)')
  if ((dry_run)); then
    printf '# --database-location not given; a real run looks it up with the command below.\n'
    printf '# This dry run shows the region (%s) in its place.\n' "$region"
    render "${cmd[@]}"
    database_location="$region"
    return 0
  fi
  printf '+ %s\n' "$(render "${cmd[@]}")" >&2
  local rc=0
  database_location="$("${cmd[@]}")" || rc=$?
  if ((rc != 0)) || [[ ! "$database_location" =~ ^[a-z0-9-]+$ ]]; then
    note_failure "$((rc == 0 ? 1 : rc))" "${cmd[@]}"
    database_location="$region"  # keep-going mode only: still try the deploy command
  fi
}

# --- main -----------------------------------------------------------------------------------------

env_vars="$(env_vars_flag)"

if ((want_index)); then
  deploy_index
fi
# Metrics before functions, so the first log lines of a new deployment are already counted.
if ((want_metrics)); then
  deploy_metrics
fi

if ((want_story)); then
  deploy_function story --trigger-http --allow-unauthenticated
fi
# Two write-then-reads plus a storyteller call (30 s timeout in the code) can outlast the
# 60 s default, so interaction gets more time.
interaction_flags=(--trigger-http --allow-unauthenticated --timeout=120s)
if ((want_interaction)); then
  if [[ "$storyteller" == gemini ]]; then
    deploy_function interaction "${interaction_flags[@]}" \
      --set-secrets="GEMINI_API_KEY=$gemini_secret:latest"
  else
    deploy_function interaction "${interaction_flags[@]}" --clear-secrets
  fi
fi
if ((want_persistence_metrics)); then
  resolve_database_location
  deploy_function persistence_metrics \
    --trigger-event-filters=type=google.cloud.firestore.document.v1.created \
    --trigger-event-filters=database="$database" \
    --trigger-event-filters-path-pattern=document="$STORY_PATH_PATTERN" \
    --trigger-location="$database_location" \
    --retry
fi

if ((${#failures[@]} > 0)); then
  printf 'deploy.sh: %d command(s) failed:\n' "${#failures[@]}" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
if ((dry_run)); then
  printf '# dry run: nothing was changed\n'
else
  printf 'deploy.sh: done (project %s, region %s)\n' "$project" "$region" >&2
fi
