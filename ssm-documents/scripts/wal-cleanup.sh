#!/usr/bin/env bash
# wal-cleanup.sh: runbook §2 "Configure WAL retention" on one StemeDB host.
#
# Sets retention_days, max_segments and segment_size_mb in the [wal] table of the StemeDB config,
# restarts the service, waits for health and for the "WAL cleanup:" journal line. Rolls the config
# back when the service does not come back healthy with the new values.
#
# Reads (the Command document passes them as environment variables):
#   SSM_ConfigFile            absolute path of config.toml (e.g. /etc/stemedb/config.toml)
#   SSM_RetentionDays         [wal] retention_days, 1-3650
#   SSM_MaxSegments           [wal] max_segments, 1-1000000
#   SSM_SegmentSizeMb         [wal] segment_size_mb, 1-4096
#   SSM_ServiceName           systemd unit to restart (e.g. stemedb-api)
#   SSM_HealthUrl             http://localhost|127.0.0.1[:port]/path answering 2xx when healthy
#   SSM_HealthTimeoutSeconds  how long to wait for health after a restart, 1-600
#   SSM_LogWaitSeconds        how long to wait for the "WAL cleanup:" journal line, 0-600
#   SSM_DryRun                true: print the diff it would apply, change nothing, restart nothing
#
# The edit:
# - only the three keys of the [wal] table change; every other byte of the file stays as it was
#   (other tables, comments, order, CRLF line ends, whether the file ends with a newline). A key
#   present in [wal] is replaced in place (its indentation, spacing and trailing comment kept);
#   a missing key is added after the last key of [wal]; a missing [wal] table is appended at the
#   end. Keys with the same names in other tables ([backup] retention_days) are not touched.
# - refused, with nothing changed, when the file cannot be edited safely: [[wal]], two [wal]
#   tables, wal defined as dotted keys or an inline table, a key defined twice, a value followed
#   by something other than a comment, a symlink as ConfigFile.
# - idempotent: when the file already holds the values, nothing is written and the service is NOT
#   restarted (a restart would only cost availability; StemeDB applies retention at start, so a
#   config written by an earlier run that never restarted is the one case this leaves to a human
#   or to a manual restart). The run then only checks health and fails if the service is down.
# - the old file is copied next to it as <ConfigFile>.bak-<UTC yyyymmddThhmmssZ> first, and the
#   new file is written to a temp file in the same directory and renamed over the old one
#   (atomic). Both are first written inside a directory of this run's own next to the config
#   (mktemp -d: mode 0700, unpredictable name), so no one but root can swap them for a symlink;
#   the backup then gets its name with link(2) (ln -T), which is exclusive and never follows a
#   symlink: a name already taken, by a file or a symlink planted there, is refused and the next
#   name (-2, -3, ...) tried; nothing is ever written through a path that existed before. The
#   rollback restores from this run's own copy, not from the backup's name. The config lives on the root disk, not on the (possibly full) data disk; if the
#   root disk is full as well, the backup fails and nothing is changed. Other temp files go to a
#   tmpfs (/run or /dev/shm).
# After a change: systemctl restart, then health (curl, per-try timeout, bounded by
# HealthTimeoutSeconds; stops early when the unit is failed/inactive), then up to LogWaitSeconds
# for a "WAL cleanup:" line in `journalctl -u <unit> --since <restart time>`. A missing line is a
# warning (exit 0, "warning" in the JSON): the new config is in effect and the service healthy;
# only the confirmation is missing. If the restart fails or health does not come: the backup is
# restored (byte for byte), the service restarted and health checked again, and the script exits 1
# with a reason saying it rolled back and whether health came back.
#
# Prints: progress and (DryRun) the unified diff; the last stdout line is one JSON object:
#   {"configFile","service","dryRun","wouldChange","configChanged","sectionCreated","backupFile",
#    "restarted","healthyBefore","healthy","walCleanupLogLine","warning","rolledBack",
#    "rollbackHealthy","reason","before":{...},"requested":{...},"after":{...}}
#   before/after hold retention_days, max_segments, segment_size_mb as found in the file before
#   and at the end (null when absent); configChanged is true when the file at the end differs
#   from the file at the start (false after a rollback).
# Exit: 0 done (also: nothing to change and healthy; log line missing), 1 refused or failed
#   (one-line reason on stderr), 2 bad parameters.

set -euo pipefail
export LC_ALL=C

readonly WAL_KEYS=(retention_days max_segments segment_size_mb)
readonly LOG_MARKER='WAL cleanup:'

CONFIG='' RETENTION='' MAX_SEGMENTS='' SEGMENT_MB='' SERVICE='' HEALTH_URL=''
HEALTH_TIMEOUT='' LOG_WAIT='' DRY_RUN=''
WORK_DIR='' CANDIDATE='' META='' BACKUP='' BACKUP_COPY='' PRIVATE_DIR=''
declare -A BEFORE=() AFTER=()
SECTION_CREATED=false WOULD_CHANGE=false CONFIG_CHANGED=false RESTARTED=false
HEALTHY_BEFORE=false HEALTHY=false LOG_LINE='' WARNING='' ROLLED_BACK=false ROLLBACK_HEALTHY=''
REASON=''

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='wal-cleanup'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh

json_str() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case "$c" in
      '"') out+='\"' ;;
      "\\") out+="\\\\" ;;
      $'\n') out+='\n' ;;
      $'\r') out+='\r' ;;
      $'\t') out+='\t' ;;
      *)
        if [[ $c < ' ' ]]; then out+=$(printf '\\u%04x' "'$c"); else out+=$c; fi
        ;;
    esac
  done
  printf '"%s"' "$out"
}

json_or_null() { if [[ -n $1 ]]; then json_str "$1"; else printf 'null'; fi; }

# A value read from the file: a JSON number when it is a plain integer, else a string, else null.
json_toml_value() {
  if [[ $1 =~ ^(0|[1-9][0-9]{0,15})$ ]]; then printf '%s' "$1"; else json_or_null "$1"; fi
}

json_values() {
  local -n values=$1
  local k sep=''
  printf '{'
  for k in "${WAL_KEYS[@]}"; do
    printf '%s"%s":%s' "$sep" "$k" "$(json_toml_value "${values[$k]:-}")"
    sep=','
  done
  printf '}'
}

print_result() {
  # shellcheck disable=SC2034 # read through the nameref in json_values
  local -A requested=([retention_days]=$RETENTION [max_segments]=$MAX_SEGMENTS [segment_size_mb]=$SEGMENT_MB)
  printf '{"configFile":%s,"service":%s,"dryRun":%s,"wouldChange":%s,"configChanged":%s,' \
    "$(json_str "$CONFIG")" "$(json_str "$SERVICE")" "$DRY_RUN" "$WOULD_CHANGE" "$CONFIG_CHANGED"
  printf '"sectionCreated":%s,"backupFile":%s,"restarted":%s,"healthyBefore":%s,"healthy":%s,' \
    "$SECTION_CREATED" "$(json_or_null "$BACKUP")" "$RESTARTED" "$HEALTHY_BEFORE" "$HEALTHY"
  printf '"walCleanupLogLine":%s,"warning":%s,"rolledBack":%s,"rollbackHealthy":%s,"reason":%s,' \
    "$(json_or_null "$LOG_LINE")" "$(json_or_null "$WARNING")" "$ROLLED_BACK" "${ROLLBACK_HEALTHY:-null}" \
    "$(json_or_null "$REASON")"
  printf '"before":%s,"requested":%s,"after":%s}\n' \
    "$(json_values BEFORE)" "$(json_values requested)" "$(json_values AFTER)"
}

# Exit 1 with a reason: the JSON result on stdout, the reason on stderr.
fail() {
  REASON=$1
  print_result
  printf '%s\n' "wal-cleanup: $REASON" >&2
  exit 1
}

bad_parameter() {
  printf '%s\n' "wal-cleanup: $1" >&2
  exit 2
}

cleanup_temp() {
  if [[ -n $PRIVATE_DIR ]]; then rm -rf -- "$PRIVATE_DIR"; fi
  if [[ -n $WORK_DIR ]]; then rm -rf -- "$WORK_DIR"; fi
}

# The Command document checks the same patterns before anything runs; checked again here so the
# script is safe when run by itself.
in_range() { [[ $1 =~ ^(0|[1-9][0-9]{0,6})$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }

read_parameters() {
  CONFIG=${SSM_ConfigFile:-}
  RETENTION=${SSM_RetentionDays:-}
  MAX_SEGMENTS=${SSM_MaxSegments:-}
  SEGMENT_MB=${SSM_SegmentSizeMb:-}
  SERVICE=${SSM_ServiceName:-}
  HEALTH_URL=${SSM_HealthUrl:-}
  HEALTH_TIMEOUT=${SSM_HealthTimeoutSeconds-60}
  LOG_WAIT=${SSM_LogWaitSeconds-30}
  DRY_RUN=${SSM_DryRun-false}
  [[ $CONFIG =~ ^(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,16}$ ]] ||
    bad_parameter "ConfigFile '$CONFIG' must be an absolute path of plain names (no '..', no spaces)"
  in_range "$RETENTION" 1 3650 || bad_parameter "RetentionDays '$RETENTION' must be a whole number from 1 to 3650"
  in_range "$MAX_SEGMENTS" 1 1000000 || bad_parameter "MaxSegments '$MAX_SEGMENTS' must be from 1 to 1000000"
  in_range "$SEGMENT_MB" 1 4096 || bad_parameter "SegmentSizeMb '$SEGMENT_MB' must be from 1 to 4096"
  [[ $SERVICE =~ ^[A-Za-z0-9][A-Za-z0-9@._-]{0,99}$ ]] || bad_parameter "ServiceName '$SERVICE' is not a systemd unit name"
  [[ $HEALTH_URL =~ ^http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?/[A-Za-z0-9._/-]*$ ]] ||
    bad_parameter "HealthUrl '$HEALTH_URL' must be http://localhost or http://127.0.0.1 with a path"
  in_range "$HEALTH_TIMEOUT" 1 600 || bad_parameter "HealthTimeoutSeconds '$HEALTH_TIMEOUT' must be from 1 to 600"
  in_range "$LOG_WAIT" 0 600 || bad_parameter "LogWaitSeconds '$LOG_WAIT' must be from 0 to 600"
  [[ $DRY_RUN == true || $DRY_RUN == false ]] || bad_parameter "DryRun '$DRY_RUN' must be true or false"
  # Normalise numbers (leading zeros are not accepted by the patterns, but stay safe).
  RETENTION=$((10#$RETENTION)) MAX_SEGMENTS=$((10#$MAX_SEGMENTS)) SEGMENT_MB=$((10#$SEGMENT_MB))
}

check_tools() {
  local t
  for t in awk cmp cp ln mv mktemp chmod chown date od tail tr grep sleep curl systemctl journalctl; do
    command -v "$t" >/dev/null 2>&1 || fail "required command '$t' not found on PATH"
  done
}

check_config_file() {
  [[ -L $CONFIG ]] && fail "ConfigFile $CONFIG is a symlink (to $(readlink -- "$CONFIG")); pass the real path"
  [[ -e $CONFIG ]] || fail "ConfigFile $CONFIG does not exist"
  [[ -f $CONFIG ]] || fail "ConfigFile $CONFIG is not a regular file"
  [[ -r $CONFIG ]] || fail "ConfigFile $CONFIG is not readable"
  if [[ $DRY_RUN == false ]]; then
    [[ -w ${CONFIG%/*}/ ]] || fail "directory ${CONFIG%/*} is not writable (needed for the backup and the atomic rename)"
  fi
}

# One run at a time per config directory (an alarm and an operator may start this together).
lock_config_dir() {
  local dir=${CONFIG%/*}
  command -v flock >/dev/null 2>&1 || { log "flock not installed; running without a lock"; return 0; }
  exec 8<"${dir:-/}"
  flock -w 60 8 || fail "another wal-cleanup run holds the lock on ${dir:-/} (waited 60 s); nothing changed"
}

make_work_dir() {
  local base
  for base in /run /dev/shm "${TMPDIR:-/tmp}"; do
    if [[ -d $base && -w $base ]] && WORK_DIR=$(mktemp -d -p "$base" wal-cleanup.XXXXXX 2>/dev/null); then
      CANDIDATE=$WORK_DIR/config.new
      META=$WORK_DIR/meta
      return 0
    fi
  done
  fail "cannot create a temp directory in /run, /dev/shm or ${TMPDIR:-/tmp}"
}

# The TOML edit. Input: the config file. Output: the new file on stdout, and KEY=VALUE lines in
# the file `meta` (old_<key>, error, section). Lines are kept as read ($0, including a CR);
# output lines are joined with "\n" and the final newline is written only if the input had one.
toml_edit_program() {
  cat <<'AWK'
function keyre(k) { return "^[ \t]*(\"" k "\"|'" k "'|" k ")[ \t]*=" }
function count(s, d,   n, i) {
  n = 0
  while ((i = index(s, d)) > 0) { n++; s = substr(s, i + length(d)) }
  return n
}
BEGIN {
  keys[1] = "retention_days"; keys[2] = "max_segments"; keys[3] = "segment_size_mb"
  want[1] = rd; want[2] = ms; want[3] = ss
  n = 0; in_wal = 0; wal_hdr = 0; last_kv = 0; in_root = 1; ml = ""; err = ""; eol = ""
  hdr_re = "^[ \t]*\\[[ \t]*(wal|\"wal\"|'wal')[ \t]*\\][ \t]*(#.*)?$"
  arr_re = "^[ \t]*\\[\\[[ \t]*(wal|\"wal\"|'wal')[ \t]*\\]\\]"
  root_re = "^[ \t]*(wal|\"wal\"|'wal')[ \t]*[.=]"
  anykey_re = keyre("(retention_days|max_segments|segment_size_mb)")
}
{
  out[++n] = $0
  line = $0; cr = ""
  if (substr(line, length(line), 1) == "\r") { cr = "\r"; line = substr(line, 1, length(line) - 1) }
  if (n == 1) { eol = cr; if (index(line, bom) == 1) line = substr(line, length(bom) + 1) }
  if (ml != "") {
    if (count(line, ml) % 2 == 1) ml = ""
    next
  }
  if (count(line, "\"\"\"") % 2 == 1) ml = "\"\"\""
  else if (count(line, "'''") % 2 == 1) ml = "'''"
  if (ml != "") {
    if (in_wal && line ~ anykey_re) err = "a [wal] key has a multi-line value; edit it by hand"
    next
  }
  if (line ~ /^[ \t]*\[/) {
    in_root = 0
    if (line ~ arr_re) err = "the file has an array of tables [[wal]]; edit it by hand"
    in_wal = (line ~ hdr_re)
    if (in_wal) {
      if (wal_hdr) err = "the file defines [wal] twice (invalid TOML)"
      wal_hdr = n; last_kv = n
    }
    next
  }
  if (in_root && line ~ root_re) err = "the file defines wal with dotted keys or an inline table; edit it by hand"
  if (!in_wal || line ~ /^[ \t]*(#.*)?$/) next
  last_kv = n
  for (i = 1; i <= 3; i++) {
    if (line !~ keyre(keys[i])) continue
    if (found[i]) err = "[wal] " keys[i] " is defined twice (invalid TOML)"
    found[i] = n
    match(line, /^[^=]*=[ \t]*/)
    prefix = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
    if (rest ~ /^"/) match(rest, /^"[^"]*"/)
    else if (rest ~ /^'/) match(rest, /^'[^']*'/)
    else match(rest, /^[^ \t#]+/)
    if (RSTART == 0 || rest ~ /^[[{]/) { err = "cannot edit the value of [wal] " keys[i] " (empty, array or table)"; continue }
    old[i] = substr(rest, 1, RLENGTH); tail = substr(rest, RLENGTH + 1)
    if (tail !~ /^[ \t]*(#.*)?$/) err = "unexpected text after the value of [wal] " keys[i]
    if (old[i] != want[i]) out[n] = prefix want[i] tail cr
  }
}
END {
  if (ml != "") err = "unterminated multi-line string"
  if (err != "") { print "error=" err > meta; exit 3 }
  for (i = 1; i <= 3; i++) {
    v = old[i]; sub(/^["']/, "", v); sub(/["']$/, "", v)
    print "old_" keys[i] "=" (found[i] ? v : "") > meta
  }
  print "section=" (wal_hdr ? "existing" : "created") > meta
  m = 0
  if (wal_hdr) {
    for (j = 1; j <= n; j++) {
      res[++m] = out[j]
      if (j == last_kv) for (i = 1; i <= 3; i++) if (!found[i]) res[++m] = keys[i] " = " want[i] eol
    }
  } else {
    for (j = 1; j <= n; j++) res[++m] = out[j]
    if (m > 0 && res[m] !~ /^[ \t\r]*$/) res[++m] = eol
    res[++m] = "[wal]" eol
    for (i = 1; i <= 3; i++) res[++m] = keys[i] " = " want[i] eol
  }
  for (j = 1; j <= m; j++) {
    printf "%s", res[j]
    if (j < m || final_nl || n == 0) printf "\n"
  }
}
AWK
}

# Prints 1 when the file ends with a newline (or is empty), else 0.
ends_with_newline() {
  if [[ ! -s $1 ]] || [[ $(tail -c 1 -- "$1" | od -An -tx1 | tr -d ' \n') == 0a ]]; then echo 1; else echo 0; fi
}

# Reads KEY=VALUE lines of `meta` into BEFORE (old_*), ERROR and SECTION.
read_meta() {
  local k v
  EDIT_ERROR='' SECTION=''
  while IFS='=' read -r k v; do
    case "$k" in
      error) EDIT_ERROR=$v ;;
      section) SECTION=$v ;;
      old_*) BEFORE[${k#old_}]=$v ;;
    esac
  done <"$META"
}

build_candidate() {
  local rc=0
  awk -v rd="$RETENTION" -v ms="$MAX_SEGMENTS" -v ss="$SEGMENT_MB" -v meta="$META" -v bom=$'\xef\xbb\xbf' \
    -v final_nl="$(ends_with_newline "$CONFIG")" "$(toml_edit_program)" "$CONFIG" >"$CANDIDATE" || rc=$?
  read_meta
  if [[ -n $EDIT_ERROR ]]; then fail "refusing to edit $CONFIG: $EDIT_ERROR (nothing changed)"; fi
  ((rc == 0)) || fail "could not compute the new $CONFIG (awk exit $rc; nothing changed)"
  [[ $SECTION == created ]] && SECTION_CREATED=true
  local k
  for k in "${WAL_KEYS[@]}"; do AFTER[$k]=${BEFORE[$k]:-}; done
  if cmp -s -- "$CONFIG" "$CANDIDATE"; then WOULD_CHANGE=false; else WOULD_CHANGE=true; fi
}

show_diff() {
  if command -v diff >/dev/null 2>&1; then
    diff -u --label "$CONFIG" --label "$CONFIG (new)" -- "$CONFIG" "$CANDIDATE" || true
  else
    log "diff not installed; the new file would be:"
    cat -- "$CANDIDATE"
  fi
}

# One health probe; success on an HTTP 2xx. --noproxy: the URL is always local.
health_once() {
  local code
  code=$(curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' --max-time "$1" "$HEALTH_URL" 2>/dev/null) || true
  [[ $code =~ ^2[0-9][0-9]$ ]]
}

# Waits up to $1 s for health. Gives up early when the unit is failed or inactive.
wait_healthy() {
  local deadline=$((SECONDS + $1)) state per_try
  while :; do
    per_try=$((deadline - SECONDS))
    ((per_try > 5)) && per_try=5
    ((per_try < 1)) && per_try=1
    if health_once "$per_try"; then return 0; fi
    state=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
    if [[ $state == failed || $state == inactive ]]; then
      log "unit $SERVICE is $state"
      return 1
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

# Waits until the next full second and prints it as journalctl's --since (local time). The old
# process only logs "WAL cleanup:" at its own start, before this second, so every such line from
# this second on comes from the restarted process (and `--since` has one-second resolution).
next_second_since() {
  local target=$(($(date +%s) + 1))
  while (($(date +%s) < target)); do sleep 0.05; done
  date -d "@$target" '+%Y-%m-%d %H:%M:%S'
}

restart_service() {
  log "restarting $SERVICE"
  systemctl restart "$SERVICE"
}

find_log_line() {
  local out
  out=$(journalctl -u "$SERVICE" --since "$1" --no-pager -q -o cat 2>/dev/null) || return 1
  grep -m 1 -F -- "$LOG_MARKER" <<<"$out"
}

wait_for_log_line() {
  local since=$1 deadline=$((SECONDS + LOG_WAIT)) line
  while :; do
    if line=$(find_log_line "$since"); then
      LOG_LINE=$line
      log "journal: $line"
      return 0
    fi
    ((SECONDS < deadline)) || break
    sleep 0.5
  done
  WARNING="no '$LOG_MARKER' line in journalctl -u $SERVICE within ${LOG_WAIT} s of the restart; the new [wal] settings are in place and the service is healthy, but StemeDB did not confirm a cleanup run"
  log "warning: $WARNING"
}

# A directory of this run's own next to the config (mktemp -d: 0700, a name no one can predict):
# what is made inside it cannot be swapped for a symlink by anyone but root, and it is on the
# config's filesystem, so link(2) and rename(2) from it to the final names are atomic.
private_dir() {
  local dir=${CONFIG%/*}
  [[ -n $PRIVATE_DIR ]] && return 0
  PRIVATE_DIR=$(mktemp -d -p "${dir:-/}" ".${CONFIG##*/}.wal-cleanup.XXXXXX")
}

# Copies the config into the private directory, then links that copy to the first free name
# <ConfigFile>.bak-<stamp>[-N]. ln -T (link(2)) fails when the name exists in any form, a symlink
# included, and never follows one, so no check-then-create race is left.
make_backup() {
  local copy stamp name i
  private_dir || fail "could not create a temp directory next to $CONFIG (is the root disk full?); nothing changed"
  copy=$PRIVATE_DIR/backup
  if ! cp -p -- "$CONFIG" "$copy" || ! cmp -s -- "$CONFIG" "$copy"; then
    fail "could not back up $CONFIG (is the root disk full?); nothing changed"
  fi
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  for ((i = 1; i <= 100; i++)); do
    name="$CONFIG.bak-$stamp"
    ((i > 1)) && name+="-$i"
    if ln -T -- "$copy" "$name" 2>/dev/null; then
      BACKUP=$name BACKUP_COPY=$copy
      log "backed up $CONFIG to $BACKUP"
      return 0
    fi
    if [[ -L $name ]]; then
      log "not using $name as the backup: a symlink (to $(readlink -- "$name")) is already there"
    elif [[ -e $name ]]; then
      log "not using $name as the backup: it already exists"
    else
      fail "could not create the backup $name (is the root disk full?); nothing changed"
    fi
  done
  fail "could not back up $CONFIG: 100 backup names for $stamp are taken; nothing changed"
}

# Replaces $CONFIG with the contents of $1, atomically: a file in the private directory (same
# filesystem), same mode and owner, flushed, then renamed over the old file.
install_config() {
  local src=$1 new
  private_dir || return 1
  new=$PRIVATE_DIR/config.new
  rm -f -- "$new"
  if cat -- "$src" >"$new" &&
    chmod --reference="$CONFIG" -- "$new" &&
    chown --reference="$CONFIG" -- "$new"; then
    sync -- "$new" 2>/dev/null || true # durability; older coreutils sync takes no file
    if mv -f -T -- "$new" "$CONFIG"; then
      return 0
    fi
  fi
  rm -f -- "$new"
  return 1
}

roll_back() {
  local why=$1
  log "$why; restoring $BACKUP"
  if ! install_config "$BACKUP_COPY"; then
    fail "$why; the rollback FAILED: could not restore $BACKUP over $CONFIG (restore it by hand, then restart $SERVICE)"
  fi
  ROLLED_BACK=true CONFIG_CHANGED=false
  local k
  for k in "${WAL_KEYS[@]}"; do AFTER[$k]=${BEFORE[$k]:-}; done
  if restart_service && wait_healthy "$HEALTH_TIMEOUT"; then
    ROLLBACK_HEALTHY=true
    fail "$why; rolled back $CONFIG from $BACKUP and restarted $SERVICE: healthy again with the old config"
  fi
  ROLLBACK_HEALTHY=false
  local before_note=''
  [[ $HEALTHY_BEFORE == false ]] && before_note=' (it was not healthy before this run either)'
  fail "$why; rolled back $CONFIG from $BACKUP and restarted $SERVICE, but it is STILL NOT healthy at $HEALTH_URL$before_note: act now"
}

apply_change() {
  make_backup
  install_config "$CANDIDATE" || fail "could not write $CONFIG (is the root disk full?); the old file is unchanged"
  CONFIG_CHANGED=true
  # shellcheck disable=SC2034 # read through the nameref in json_values
  AFTER=([retention_days]=$RETENTION [max_segments]=$MAX_SEGMENTS [segment_size_mb]=$SEGMENT_MB)
  log "wrote $CONFIG"
  local since
  since=$(next_second_since)
  RESTARTED=true
  if ! restart_service; then
    roll_back "systemctl restart $SERVICE failed with the new [wal] settings"
  fi
  if ! wait_healthy "$HEALTH_TIMEOUT"; then
    roll_back "$SERVICE did not become healthy at $HEALTH_URL within ${HEALTH_TIMEOUT} s with the new [wal] settings"
  fi
  HEALTHY=true
  log "$SERVICE is healthy"
  wait_for_log_line "$since"
}

main() {
  read_parameters
  trap cleanup_temp EXIT
  check_tools
  check_config_file
  if [[ $DRY_RUN == false ]]; then lock_config_dir; fi
  make_work_dir
  build_candidate
  if health_once 3; then HEALTHY_BEFORE=true; fi
  if [[ $WOULD_CHANGE == false ]]; then
    log "$CONFIG already has retention_days=$RETENTION, max_segments=$MAX_SEGMENTS, segment_size_mb=$SEGMENT_MB in [wal]: nothing to change, not restarting"
    if [[ $DRY_RUN == true ]]; then
      HEALTHY=$HEALTHY_BEFORE
    elif wait_healthy "$HEALTH_TIMEOUT"; then
      HEALTHY=true
    else
      fail "$CONFIG needs no change (not restarted), but $SERVICE is not healthy at $HEALTH_URL"
    fi
    print_result
    return 0
  fi
  if [[ $DRY_RUN == true ]]; then
    log "DryRun: would apply this change to $CONFIG, back it up and restart $SERVICE:"
    show_diff
    HEALTHY=$HEALTHY_BEFORE
    print_result
    return 0
  fi
  apply_change
  print_result
}

main "$@"
