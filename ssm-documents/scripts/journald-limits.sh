#!/usr/bin/env bash
# journald-limits.sh: runbook "Prevention", "Systemd journal vacuum ... Make permanent", on one host.
#
# Writes the journald drop-in <conf dir>/<DropInName>:
#   [Journal]
#   SystemMaxUse=<SystemMaxUse>
#   MaxRetentionSec=<MaxRetentionSec>
# (after two comment lines saying who wrote it) and restarts systemd-journald only when the file
# changed, so journald applies the limits (and vacuums down to them) at once.
#
# Reads (the Command document passes them as environment variables; checked again here, so the
# script is safe to run by itself):
#   SSM_SystemMaxUse     journald's SystemMaxUse: digits and K, M, G or T (powers of 1024), from 16M
#                        to 16T, e.g. 500M
#   SSM_MaxRetentionSec  journald's MaxRetentionSec: digits and s, min, h, day, week, month or year,
#                        from 1 hour to 10 years, e.g. 7day
#   SSM_DropInName       the drop-in's file name: a letter or digit, then letters, digits, "_" and
#                        "-", ending in .conf, e.g. StemeDB-limits.conf
#   SSM_DryRun           true: print the change it would make; write nothing, restart nothing
# and one variable that no Command document can set (SSM passes parameters only as SSM_*):
#   STEMEDB_JOURNALD_CONF_DIR  the drop-in directory, default /etc/systemd/journald.conf.d (tests
#                        point it at a temp directory)
#
# The write:
# - idempotent: a drop-in that already holds these exact bytes is not written and journald is not
#   restarted;
# - atomic: the new file is written to a temp file in the drop-in directory (a hidden name that
#   does not end in .conf, so journald never reads it), given mode 0644, and renamed over the old
#   one. The directory is created (0755) when missing. The old drop-in is kept in a second hidden
#   temp file until journald is back;
# - refused, with nothing changed, when the directory or the drop-in is a symlink or not a
#   directory / regular file;
# - rolled back when `systemctl restart systemd-journald` fails or journald is not active within
#   10 s: the old drop-in is put back (or the new one removed if there was none), journald is
#   restarted again, and the script exits 1 saying so.
# One run at a time per drop-in directory (flock), as an association and an operator may overlap.
#
# Prints: progress and (DryRun) the unified diff on stderr; the last stdout line is one JSON object:
#   {"dropInFile","dryRun","wouldChange","changed","created","restarted","journaldActive",
#    "rolledBack","reason","before":{"SystemMaxUse","MaxRetentionSec"},"requested":{...}}
#   before: the values found in the drop-in (null when absent or no drop-in); created: this run
#   wrote a drop-in where there was none.
# Exit: 0 done (also: nothing to change), 1 refused or failed (one-line reason on stderr),
#   2 bad parameters.

set -euo pipefail
export LC_ALL=C

readonly DEFAULT_CONF_DIR=/etc/systemd/journald.conf.d
readonly JOURNALD_UNIT=systemd-journald
readonly MIN_MAX_USE_BYTES=$((16 * 1024 ** 2))
readonly MAX_MAX_USE_BYTES=$((16 * 1024 ** 4))
readonly MIN_RETENTION_SECONDS=3600
readonly MAX_RETENTION_SECONDS=$((10 * 31557600))

MAX_USE='' RETENTION='' DROP_IN_NAME='' DRY_RUN='false' CONF_DIR='' DROP_IN=''
OLD_COPY='' NEW_TEMP='' CONTENT=''
BEFORE_MAX_USE='' BEFORE_RETENTION=''
WOULD_CHANGE=false CHANGED=false CREATED=false RESTARTED=false JOURNALD_ACTIVE=false
ROLLED_BACK=false REASON=''

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='journald-limits'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh

print_result() {
  printf '{"dropInFile":%s,"dryRun":%s,"wouldChange":%s,"changed":%s,"created":%s,' \
    "$(json_or_null "$DROP_IN")" "$DRY_RUN" "$WOULD_CHANGE" "$CHANGED" "$CREATED"
  printf '"restarted":%s,"journaldActive":%s,"rolledBack":%s,"reason":%s,' \
    "$RESTARTED" "$JOURNALD_ACTIVE" "$ROLLED_BACK" "$(json_or_null "$REASON")"
  printf '"before":{"SystemMaxUse":%s,"MaxRetentionSec":%s},' \
    "$(json_or_null "$BEFORE_MAX_USE")" "$(json_or_null "$BEFORE_RETENTION")"
  printf '"requested":{"SystemMaxUse":%s,"MaxRetentionSec":%s}}\n' \
    "$(json_or_null "$MAX_USE")" "$(json_or_null "$RETENTION")"
}

# Exit 1 (refused or failed) or 2 (bad parameters) with a reason: JSON on stdout, reason on stderr.
fail() { end_run 1 "$1"; }
bad_parameter() { end_run 2 "$1"; }

cleanup_temp() {
  if [[ -n $NEW_TEMP ]]; then rm -f -- "$NEW_TEMP"; fi
  if [[ -n $OLD_COPY ]]; then rm -f -- "$OLD_COPY"; fi
}

# Bytes of a journald size (digits and K/M/G/T, powers of 1024).
size_bytes() {
  local n=${1%?} unit=${1: -1} power
  case "$unit" in K) power=1 ;; M) power=2 ;; G) power=3 ;; T) power=4 ;; esac
  printf '%s' $((10#$n * 1024 ** power))
}

# Seconds of a journald time span (digits and one unit, systemd's lengths of a month and a year).
span_seconds() {
  local n=${1%%[a-z]*} unit=${1##*[0-9]} per
  case "$unit" in
    s) per=1 ;; min) per=60 ;; h) per=3600 ;; day) per=86400 ;; week) per=604800 ;;
    month) per=2629800 ;; year) per=31557600 ;;
  esac
  printf '%s' $((10#$n * per))
}

valid_max_use() {
  [[ $1 =~ ^[1-9][0-9]{0,5}[KMGT]$ ]] || return 1
  local bytes
  bytes=$(size_bytes "$1")
  ((bytes >= MIN_MAX_USE_BYTES && bytes <= MAX_MAX_USE_BYTES))
}

valid_retention() {
  [[ $1 =~ ^[1-9][0-9]{0,4}(s|min|h|day|week|month|year)$ ]] || return 1
  local seconds
  seconds=$(span_seconds "$1")
  ((seconds >= MIN_RETENTION_SECONDS && seconds <= MAX_RETENTION_SECONDS))
}

read_parameters() {
  MAX_USE=${SSM_SystemMaxUse:-}
  RETENTION=${SSM_MaxRetentionSec:-}
  DROP_IN_NAME=${SSM_DropInName:-}
  DRY_RUN=${SSM_DryRun-false}
  if [[ $DRY_RUN != true && $DRY_RUN != false ]]; then
    DRY_RUN=false
    bad_parameter "DryRun '${SSM_DryRun-}' must be true or false"
  fi
  valid_max_use "$MAX_USE" ||
    bad_parameter "SystemMaxUse '$MAX_USE' must be digits and K, M, G or T, from 16M to 16T (e.g. 500M)"
  valid_retention "$RETENTION" ||
    bad_parameter "MaxRetentionSec '$RETENTION' must be digits and s, min, h, day, week, month or year, from 1 hour to 10 years (e.g. 7day)"
  [[ $DROP_IN_NAME =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.conf$ ]] ||
    bad_parameter "DropInName '$DROP_IN_NAME' must be a file name of letters, digits, '_' and '-' ending in .conf"
  CONF_DIR=${STEMEDB_JOURNALD_CONF_DIR:-$DEFAULT_CONF_DIR}
  [[ $CONF_DIR =~ $PLAIN_PATH_RE ]] ||
    bad_parameter "STEMEDB_JOURNALD_CONF_DIR '$CONF_DIR' must be an absolute path of plain names"
  DROP_IN=$CONF_DIR/$DROP_IN_NAME
}

# The drop-in's text: what this run writes, byte for byte.
drop_in_content() {
  printf '%s\n' \
    '# Managed by the StemeDB disk-full automation (runbook "Prevention": journal limits).' \
    '# Rewritten by each JournaldLimits run: change prevention.journald in the stack configuration instead.' \
    '[Journal]' \
    "SystemMaxUse=$MAX_USE" \
    "MaxRetentionSec=$RETENTION"
}

check_paths() {
  if [[ -L $CONF_DIR ]]; then fail "$CONF_DIR is a symlink (to $(readlink -- "$CONF_DIR")); refusing to write through it"; fi
  if [[ -e $CONF_DIR && ! -d $CONF_DIR ]]; then fail "$CONF_DIR exists and is not a directory"; fi
  if [[ -L $DROP_IN ]]; then fail "$DROP_IN is a symlink (to $(readlink -- "$DROP_IN")); refusing to write through it"; fi
  if [[ -e $DROP_IN && ! -f $DROP_IN ]]; then fail "$DROP_IN exists and is not a regular file"; fi
  if [[ -e $DROP_IN && ! -r $DROP_IN ]]; then fail "$DROP_IN is not readable"; fi
}

# The last value of KEY= in the drop-in ('' when absent).
value_in_drop_in() {
  [[ -f $DROP_IN ]] || return 0
  awk -v key="$1" '
    { sub(/\r$/, "") }
    $0 ~ "^[ \t]*" key "[ \t]*=" { v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v) }
    END { printf "%s", v }' "$DROP_IN"
}

show_diff() {
  local old=$DROP_IN
  [[ -e $DROP_IN ]] || old=/dev/null
  if command -v diff >/dev/null 2>&1; then
    diff -u --label "$DROP_IN" --label "$DROP_IN (new)" -- "$old" <(printf '%s' "$CONTENT") >&2 || true
  else
    log "diff not installed; the new file would be:"
    printf '%s' "$CONTENT" >&2
  fi
}

journald_active() { [[ $(systemctl is-active "$JOURNALD_UNIT" 2>/dev/null) == active ]]; }

# Restarts journald and waits up to 10 s for it to be active.
restart_journald() {
  local i
  log "restarting $JOURNALD_UNIT"
  systemctl restart "$JOURNALD_UNIT" || return 1
  for ((i = 0; i < 40; i++)); do
    if journald_active; then return 0; fi
    sleep 0.25
  done
  return 1
}

lock_conf_dir() {
  command -v flock >/dev/null 2>&1 || { log "flock not installed; running without a lock"; return 0; }
  exec 8<"$CONF_DIR"
  flock -w 60 8 || fail "another journald-limits run holds the lock on $CONF_DIR (waited 60 s); nothing changed"
}

# Puts the old drop-in back (or removes the new one), restarts journald, and fails saying so.
roll_back() {
  local why=$1
  log "$why; rolling back $DROP_IN"
  if [[ -n $OLD_COPY ]]; then
    mv -f -T -- "$OLD_COPY" "$DROP_IN" || fail "$why; the rollback FAILED: could not restore $DROP_IN (restore it by hand)"
    OLD_COPY=''
  else
    rm -f -- "$DROP_IN" || fail "$why; the rollback FAILED: could not remove the new $DROP_IN"
  fi
  CHANGED=false CREATED=false ROLLED_BACK=true
  if restart_journald; then
    JOURNALD_ACTIVE=true
    fail "$why; rolled back $DROP_IN and restarted $JOURNALD_UNIT: active again with the old settings"
  fi
  JOURNALD_ACTIVE=false
  fail "$why; rolled back $DROP_IN, but $JOURNALD_UNIT is STILL NOT active: act now (systemctl status $JOURNALD_UNIT)"
}

# Copies the current drop-in to a hidden temp file next to it, for the rollback.
keep_old_copy() {
  OLD_COPY=$(mktemp -p "$CONF_DIR" ".$DROP_IN_NAME.old.XXXXXX") || return 1
  cp -p -- "$DROP_IN" "$OLD_COPY" || return 1
  cmp -s -- "$DROP_IN" "$OLD_COPY"
}

apply_change() {
  if [[ ! -d $CONF_DIR ]]; then
    if ! mkdir -p -- "$CONF_DIR" || ! chmod 0755 -- "$CONF_DIR"; then
      fail "could not create $CONF_DIR (is the root disk full?); nothing changed"
    fi
    log "created $CONF_DIR"
  fi
  lock_conf_dir
  local existed=false
  if [[ -e $DROP_IN ]]; then
    existed=true
    keep_old_copy || fail "could not keep a copy of $DROP_IN for the rollback (is the root disk full?); nothing changed"
  fi
  NEW_TEMP=$(mktemp -p "$CONF_DIR" ".$DROP_IN_NAME.new.XXXXXX") ||
    fail "could not create a temp file in $CONF_DIR (is the root disk full?); nothing changed"
  if ! printf '%s' "$CONTENT" >"$NEW_TEMP" || ! chmod 0644 -- "$NEW_TEMP" || ! cmp -s -- "$NEW_TEMP" <(printf '%s' "$CONTENT"); then
    fail "could not write the new drop-in next to $DROP_IN (is the root disk full?); nothing changed"
  fi
  sync -- "$NEW_TEMP" 2>/dev/null || true # durability; older coreutils sync takes no file
  mv -f -T -- "$NEW_TEMP" "$DROP_IN" || fail "could not rename the new drop-in over $DROP_IN; the old file is unchanged"
  NEW_TEMP=''
  CHANGED=true
  [[ $existed == true ]] || CREATED=true
  log "wrote $DROP_IN"
  RESTARTED=true
  if ! restart_journald; then
    roll_back "$JOURNALD_UNIT did not restart or is not active within 10 s with the new limits"
  fi
  JOURNALD_ACTIVE=true
  log "$JOURNALD_UNIT is active with SystemMaxUse=$MAX_USE MaxRetentionSec=$RETENTION"
}

main() {
  trap cleanup_temp EXIT
  read_parameters
  check_paths
  BEFORE_MAX_USE=$(value_in_drop_in SystemMaxUse)
  BEFORE_RETENTION=$(value_in_drop_in MaxRetentionSec)
  CONTENT=$(drop_in_content)$'\n'
  if [[ -f $DROP_IN ]] && cmp -s -- "$DROP_IN" <(printf '%s' "$CONTENT"); then
    if journald_active; then JOURNALD_ACTIVE=true; fi
    log "$DROP_IN already holds SystemMaxUse=$MAX_USE MaxRetentionSec=$RETENTION: nothing to change, not restarting $JOURNALD_UNIT"
    print_result
    return 0
  fi
  WOULD_CHANGE=true
  if [[ $DRY_RUN == true ]]; then
    if journald_active; then JOURNALD_ACTIVE=true; fi
    log "DryRun: would write $DROP_IN (mode 0644) and restart $JOURNALD_UNIT:"
    show_diff
    print_result
    return 0
  fi
  apply_change
  print_result
}

main "$@"
