#!/usr/bin/env bash
# compact-database.sh: the runbook's §3 Database Compaction through the StemeDB admin API.
# Deletes nothing itself: the server compacts; this script checks, starts, watches and measures.
#
# Reads:
#   SSM_MountPoint       required; the data mount (absolute path, no . or .. segment)
#   SSM_DbDir            database directory; empty = <MountPoint>/db
#   SSM_BaseUrl          the API on this host, http://localhost or 127.0.0.1 with an optional port
#                        (default http://localhost:18180)
#   SSM_Aggressive       true | false: the {"aggressive": ...} body of the compact call (default false)
#   SSM_MinFreePercent   refuse when the filesystem has less than this % free (default 5):
#                        compaction writes new files before it deletes old ones, so on a full disk it
#                        can fail half-way and make things worse
#   SSM_TimeoutSeconds   how long to watch the compaction (default 3600)
#   SSM_PollSeconds      seconds between two reads of /metrics (default 5, the runbook's watch -n 5)
#   SSM_DryRun           true: every check, then report what it would do; no compact call (default false)
#
# Steps: MountPoint is a mount point and DbDir a directory on it; df and `du -sb DbDir` before;
# free % (avail / size, as the runbook's node_filesystem_avail_bytes alert) at least MinFreePercent;
# GET <BaseUrl>/v1/health answers 200; GET <BaseUrl>/metrics has stemedb_compaction_progress;
# POST <BaseUrl>/v1/admin/compact (202, or 409 when one already runs: then that one is watched);
# /metrics polled until stemedb_compaction_progress reaches 1 with stemedb_compaction_running 0 and
# stemedb_compaction_runs_total above its value before the call; then df and du again.
# Prints progress on stderr and, as the last stdout line, one JSON object:
#   {"status":"compacted"|"dry-run"|"refused"|"failed"|"timeout","reason","dryRun","mountPoint",
#    "dbDir","aggressive","minFreePercent","alreadyRunning","progress","polls","durationSeconds",
#    "dbBytesBefore","dbBytesAfter","dbBytesFreed","availBytesBefore","availBytesAfter",
#    "fsBytesFreed","usedPercentBefore","usedPercentAfter","freePercentBefore","freePercentAfter",
#    "serverBytesFreed","nextSection","warnings":[...]}
# (unknown figures are null). nextSection is "ExpandVolume" when the compaction freed nothing: the
# runbook's "database growth is legitimate, proceed to §5".
# Exit: 0 compacted or dry run; 2 invalid input; 3 MountPoint not a mount point or DbDir missing;
# 4 refused, too little free space; 5 server not healthy or metrics unreadable; 6 the compact call
# failed; 7 not finished within TimeoutSeconds (the server may still be compacting).
set -euo pipefail

readonly BOOL_RE='^(true|false)$'
readonly TIMEOUT_RE='^([1-9][0-9]{0,2}|[1-6][0-9]{3}|7[01][0-9]{2}|7200)$'
readonly POLL_RE='^([1-9]|[1-5][0-9]|60)$'
readonly DU_TIMEOUT_SECONDS=300
readonly HTTP_TIMEOUT_SECONDS=10
readonly PROGRESS_METRIC=stemedb_compaction_progress
readonly RUNNING_METRIC=stemedb_compaction_running
readonly RUNS_METRIC=stemedb_compaction_runs_total
readonly FREED_METRIC=stemedb_compaction_bytes_freed_total

WARNINGS=()
# Metric values read before the compact call ('' when the server does not export them).
RUNNING_BEFORE=''
RUNS_BEFORE=''
FREED_BEFORE=''
# The figures the JSON reports; "null" until known.
declare -A R=(
  [dryRun]=false [mountPoint]=null [dbDir]=null [aggressive]=false [minFreePercent]=null
  [alreadyRunning]=false [progress]=null [polls]=0 [durationSeconds]=null
  [dbBytesBefore]=null [dbBytesAfter]=null [dbBytesFreed]=null
  [availBytesBefore]=null [availBytesAfter]=null [fsBytesFreed]=null
  [usedPercentBefore]=null [usedPercentAfter]=null [freePercentBefore]=null [freePercentAfter]=null
  [serverBytesFreed]=null [nextSection]='""'
)
readonly FIELDS=(dryRun mountPoint dbDir aggressive minFreePercent alreadyRunning progress polls
  durationSeconds dbBytesBefore dbBytesAfter dbBytesFreed availBytesBefore availBytesAfter fsBytesFreed
  usedPercentBefore usedPercentAfter freePercentBefore freePercentAfter serverBytesFreed nextSection)

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='compact-database'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh

# Prints the result line: emit STATUS REASON.
emit() {
  local status=$1 reason=$2 field
  printf '{"status":%s,"reason":%s' "$(json_str "$status")" "$(json_str "$reason")"
  for field in "${FIELDS[@]}"; do printf ',"%s":%s' "$field" "${R[$field]}"; done
  printf ',"warnings":%s}\n' "$(json_array ${WARNINGS[@]+"${WARNINGS[@]}"})"
}

# Ends with a one-line reason on stderr and the result line: finish CODE STATUS REASON.
finish() {
  local code=$1 status=$2 reason=$3
  log "$reason"
  emit "$status" "$reason"
  exit "$code"
}

# Reads and checks one SSM_ variable into a shell variable: param OUT NAME REGEX DEFAULT.
# (Replaces lib/common.sh's param: a bad value ends through finish, with the full JSON result.)
param() {
  local out=$1 name=$2 re=$3 default=$4 var value
  var="SSM_$name"
  value=${!var:-$default}
  [[ "$value" =~ $re ]] || finish 2 refused "invalid $name: must match $re"
  printf -v "$out" '%s' "$value"
}

# df of the filesystem holding $1 into R[<kind>Before|After]: df_into DIR Before|After.
df_into() {
  local dir=$1 when=$2 size used avail
  read -r size used avail < <(df -B1 --output=size,used,avail -- "$dir" | tail -n 1)
  R[availBytes$when]=$avail
  R[usedPercent$when]=$(percent "$used" $((used + avail)))
  R[freePercent$when]=$(percent "$avail" "$size")
}

# `du -sb` of the database directory (apparent bytes) into R[dbBytes<when>].
du_into() {
  local dir=$1 when=$2 out
  out=$(timeout "$DU_TIMEOUT_SECONDS" du -s -x -b -- "$dir" 2>/dev/null | tail -n 1 | cut -f1) || true
  if [[ "$out" =~ ^[0-9]+$ ]]; then
    R[dbBytes$when]=$out
  else
    WARNINGS+=("du -sb $dir failed or timed out ($when)")
  fi
}

# GET a URL; prints the body; fails on connection errors and HTTP >= 400.
http_get() { curl -sS -f --connect-timeout 5 --max-time "$HTTP_TIMEOUT_SECONDS" -- "$1"; }

# First sample of a metric (with or without labels) in Prometheus text: metric TEXT NAME.
metric() {
  printf '%s\n' "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { print $2; exit }'
}

check_paths() {
  local mount_point=$1 db_dir=$2
  findmnt -n --mountpoint "$mount_point" >/dev/null 2>&1 || finish 3 failed "$mount_point is not a mount point"
  [[ -d "$db_dir" && ! -L "$db_dir" ]] || finish 3 failed "database directory $db_dir does not exist (or is a symlink)"
  if [[ "$(df --output=target -- "$db_dir" | tail -n 1)" != "$mount_point" ]]; then
    WARNINGS+=("database directory $db_dir is not on $mount_point")
  fi
}

check_headroom() {
  local min_free=$1 mount_point=$2
  if is_less "${R[freePercentBefore]}" "$min_free"; then
    finish 4 refused "refused: only ${R[freePercentBefore]}% free on $mount_point (${R[availBytesBefore]} bytes), below MinFreePercent ${min_free}%: compaction needs headroom and on a full disk can make things worse; free space first (EmergencyCleanup, WalCleanup or ExpandVolume)"
  fi
  log "headroom: ${R[freePercentBefore]}% free on $mount_point (MinFreePercent ${min_free}%)"
}

check_server() {
  local base_url=$1 metrics progress
  http_get "$base_url/v1/health" >/dev/null 2>&1 ||
    finish 5 failed "StemeDB is not healthy: GET $base_url/v1/health did not answer 200; start the service first"
  metrics=$(http_get "$base_url/metrics" 2>&1) || finish 5 failed "cannot read $base_url/metrics: $metrics"
  progress=$(metric "$metrics" "$PROGRESS_METRIC")
  [[ -n "$progress" ]] || finish 5 failed "$base_url/metrics has no $PROGRESS_METRIC: cannot watch a compaction"
  RUNNING_BEFORE=$(metric "$metrics" "$RUNNING_METRIC")
  RUNS_BEFORE=$(metric "$metrics" "$RUNS_METRIC")
  FREED_BEFORE=$(metric "$metrics" "$FREED_METRIC")
}

# POST the compact call; sets R[alreadyRunning] on 409.
start_compaction() {
  local url=$1 body=$2 out rc=0 code
  out=$(curl -sS --connect-timeout 5 --max-time "$HTTP_TIMEOUT_SECONDS" -X POST \
    -H 'Content-Type: application/json' --data "$body" -w '\n%{http_code}' -- "$url" 2>&1) || rc=$?
  ((rc == 0)) || finish 6 failed "POST $url failed: curl exit $rc: ${out%$'\n'000}"
  code=${out##*$'\n'}
  case "$code" in
    200 | 201 | 202) log "compaction started: POST $url $body returned $code" ;;
    409)
      R[alreadyRunning]=true
      log "a compaction is already running (409): watching it instead of starting another"
      ;;
    *) finish 6 failed "POST $url returned $code: ${out%$'\n'*}" ;;
  esac
}

# True when the metrics show the compaction started by this run as finished.
compaction_done() {
  local progress=$1 running=$2 runs=$3
  awk -v p="$progress" 'BEGIN { exit !(p >= 1) }' || return 1
  [[ "$running" != 1 ]] || return 1
  [[ -z "$RUNS_BEFORE" || -z "$runs" ]] || awk -v a="$runs" -v b="$RUNS_BEFORE" 'BEGIN { exit !(a > b) }'
}

watch_compaction() {
  local base_url=$1 timeout_s=$2 poll_s=$3 started metrics progress='' running runs freed
  started=$SECONDS
  while true; do
    sleep "$poll_s"
    R[polls]=$((R[polls] + 1))
    if metrics=$(http_get "$base_url/metrics" 2>/dev/null); then
      progress=$(metric "$metrics" "$PROGRESS_METRIC")
      running=$(metric "$metrics" "$RUNNING_METRIC")
      runs=$(metric "$metrics" "$RUNS_METRIC")
      freed=$(metric "$metrics" "$FREED_METRIC")
      if [[ -n "$progress" ]]; then
        R[progress]=$progress
        log "compaction progress $progress after $((SECONDS - started)) s"
        if compaction_done "$progress" "$running" "$runs"; then
          if [[ -n "$freed" && -n "$FREED_BEFORE" ]]; then
            R[serverBytesFreed]=$(awk -v a="$freed" -v b="$FREED_BEFORE" 'BEGIN { printf "%.0f", a - b }')
          fi
          R[durationSeconds]=$((SECONDS - started))
          return 0
        fi
      fi
    else
      log "metrics unreadable, retrying"
    fi
    if ((SECONDS - started >= timeout_s)); then
      R[durationSeconds]=$((SECONDS - started))
      return 1
    fi
  done
}

main() {
  local mount_point db_dir base_url aggressive min_free timeout_s poll_s dry_run body
  param mount_point MountPoint "$MOUNT_POINT_RE" ''
  param db_dir DbDir "$OPTIONAL_DIR_RE" ''
  param base_url BaseUrl "$BASE_URL_RE" http://localhost:18180
  param aggressive Aggressive "$BOOL_RE" false
  param min_free MinFreePercent "$PERCENT_RE" 5
  param timeout_s TimeoutSeconds "$TIMEOUT_RE" 3600
  param poll_s PollSeconds "$POLL_RE" 5
  param dry_run DryRun "$BOOL_RE" false
  [[ -n "$db_dir" ]] || db_dir=${mount_point%/}/db
  R[dryRun]=$dry_run
  R[mountPoint]=$(json_str "$mount_point")
  R[dbDir]=$(json_str "$db_dir")
  R[aggressive]=$aggressive
  R[minFreePercent]=$min_free
  body="{\"aggressive\": $aggressive}"

  check_paths "$mount_point" "$db_dir"
  df_into "$db_dir" Before
  du_into "$db_dir" Before
  log "before: ${R[dbBytesBefore]} bytes in $db_dir; ${R[usedPercentBefore]}% used, ${R[availBytesBefore]} bytes available"
  check_headroom "$min_free" "$mount_point"
  check_server "$base_url"

  if [[ "$dry_run" == true ]]; then
    local what="would POST $base_url/v1/admin/compact $body and watch $PROGRESS_METRIC for up to $timeout_s s"
    [[ "$RUNNING_BEFORE" != 1 ]] || what="a compaction is already running; would watch it for up to $timeout_s s"
    log "dry run: $what"
    emit dry-run "dry run: $what"
    return 0
  fi

  start_compaction "$base_url/v1/admin/compact" "$body"
  if ! watch_compaction "$base_url" "$timeout_s" "$poll_s"; then
    finish 7 timeout "compaction did not finish within $timeout_s s (last progress ${R[progress]}); the server may still be compacting: check $base_url/metrics"
  fi

  sync -f -- "$db_dir" 2>/dev/null || true
  df_into "$db_dir" After
  du_into "$db_dir" After
  if [[ "${R[dbBytesBefore]}" != null && "${R[dbBytesAfter]}" != null ]]; then
    R[dbBytesFreed]=$((R[dbBytesBefore] - R[dbBytesAfter]))
  fi
  R[fsBytesFreed]=$((R[availBytesAfter] - R[availBytesBefore]))
  local freed=${R[dbBytesFreed]}
  [[ "$freed" != null ]] || freed=${R[fsBytesFreed]}
  local reason="compaction finished in ${R[durationSeconds]} s: $db_dir ${R[dbBytesBefore]} -> ${R[dbBytesAfter]} bytes, ${R[fsBytesFreed]} bytes more available on $mount_point"
  if ((freed <= 0)); then
    R[nextSection]='"ExpandVolume"'
    reason+="; it freed nothing: database growth is legitimate, proceed to §5 Volume Expansion"
  fi
  log "$reason"
  emit compacted "$reason"
}

main "$@"
