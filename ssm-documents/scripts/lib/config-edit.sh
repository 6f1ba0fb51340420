# shellcheck shell=bash disable=SC2034 # the state variables are the including script's (read there)
# lib/config-edit.sh: editing the StemeDB config file (config.toml) in place, shared by the scripts
# that set its keys (wal-cleanup.sh: [wal]; storage-settings.sh: [storage] and [backup]).
#
# Included like lib/common.sh (one `source` line with the inline marker, after lib/common.sh,
# whose `log` it uses, lib/service-health.sh, whose `health_once` and `wait_healthy` it uses,
# and lib/file-backup.sh, whose `link_backup` it uses); only the scripts that edit the config include it, so the other documents
# do not carry it. It only defines functions.
#
# What the functions read and set: the including script defines (CONFIG, SERVICE, HEALTH_URL and
# HEALTH_TIMEOUT through read_edit_parameters)
#   CONFIG          the config file            SERVICE, HEALTH_URL, HEALTH_TIMEOUT  the service
#   DRY_RUN         true|false                  WORK_DIR, CANDIDATE, META, PRIVATE_DIR,
#   BACKUP, BACKUP_COPY, CONFIG_CHANGED, RESTARTED, HEALTHY, ROLLED_BACK, ROLLBACK_HEALTHY,
#   HEALTHY_BEFORE  (state, initialised by the script; the functions set them)
# and the functions `fail REASON` (prints the script's JSON result, exits 1), `check_tools`,
# `build_candidate` (writes CANDIDATE from CONFIG, with toml_set_keys) and `reset_after_values`
# (after a rollback: the values reported as "after" are the old ones again).
#
# The edit (toml_set_keys): only the named keys of one table change; every other byte of the file
# stays as it was (other tables, comments, order, CRLF line ends, whether the file ends with a
# newline, a byte-order mark). A key present in the table is replaced in place (its indentation,
# spacing and trailing comment kept); a missing key is added after the last key of the table; a
# missing table is appended at the end. Keys with the same names in other tables are not touched.
# Refused, with nothing changed, when the file cannot be edited safely: [[table]], the table twice,
# the table as dotted keys or an inline table, a key defined twice, a multi-line value, a value
# followed by something other than a comment.

# Ends the run on a bad parameter, before anything was looked at: the reason on stderr, exit 2.
bad_parameter() {
  log "$1"
  exit 2
}

# Is $1 a whole number from $2 to $3 (digits only, no leading zero, as the document's patterns)?
in_range() { [[ $1 =~ ^(0|[1-9][0-9]{0,6})$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }

# read_edit_parameters CONFIG SERVICE HEALTH_URL HEALTH_TIMEOUT: the parameters every config edit
# takes (the script passes its SSM_ConfigFile, SSM_ServiceName, SSM_HealthUrl and
# SSM_HealthTimeoutSeconds), checked with the document's patterns and stored in CONFIG, SERVICE,
# HEALTH_URL and HEALTH_TIMEOUT; a bad one ends the run through bad_parameter.
read_edit_parameters() {
  CONFIG=$1 SERVICE=$2 HEALTH_URL=$3 HEALTH_TIMEOUT=$4
  [[ $CONFIG =~ $PLAIN_PATH_RE ]] ||
    bad_parameter "ConfigFile '$CONFIG' must be an absolute path of plain names (no '..', no spaces)"
  [[ $SERVICE =~ $SERVICE_RE ]] || bad_parameter "ServiceName '$SERVICE' is not a systemd unit name"
  [[ $HEALTH_URL =~ $HEALTH_URL_RE ]] ||
    bad_parameter "HealthUrl '$HEALTH_URL' must be http://localhost or http://127.0.0.1 with a path"
  in_range "$HEALTH_TIMEOUT" 1 600 || bad_parameter "HealthTimeoutSeconds '$HEALTH_TIMEOUT' must be from 1 to 600"
}

# A value read from the file: a JSON number when it is a plain integer, else a string, else null.
json_toml_value() {
  if [[ $1 =~ ^(0|[1-9][0-9]{0,15})$ ]]; then printf '%s' "$1"; else json_or_null "$1"; fi
}

# A JSON object of the values in an associative array: json_toml_values ARRAY KEY...
json_toml_values() {
  local -n values=$1
  shift
  local k sep=''
  printf '{'
  for k in "$@"; do
    printf '%s"%s":%s' "$sep" "$k" "$(json_toml_value "${values[$k]:-}")"
    sep=','
  done
  printf '}'
}

cleanup_temp() {
  if [[ -n $PRIVATE_DIR ]]; then rm -rf -- "$PRIVATE_DIR"; fi
  if [[ -n $WORK_DIR ]]; then rm -rf -- "$WORK_DIR"; fi
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

# One run at a time per config directory (an alarm, an association and an operator may start
# these together; every script that includes this file takes the same lock).
lock_config_dir() {
  local dir=${CONFIG%/*}
  command -v flock >/dev/null 2>&1 || { log "flock not installed; running without a lock"; return 0; }
  exec 8<"${dir:-/}"
  flock -w 60 8 || fail "another $SCRIPT_NAME run holds the lock on ${dir:-/} (waited 60 s); nothing changed"
}

make_work_dir() {
  local base
  for base in /run /dev/shm "${TMPDIR:-/tmp}"; do
    if [[ -d $base && -w $base ]] && WORK_DIR=$(mktemp -d -p "$base" "$SCRIPT_NAME.XXXXXX" 2>/dev/null); then
      CANDIDATE=$WORK_DIR/config.new
      META=$WORK_DIR/meta
      return 0
    fi
  done
  fail "cannot create a temp directory in /run, /dev/shm or ${TMPDIR:-/tmp}"
}

# The TOML edit of one table. Variables: table, keys and values (space-separated, same order),
# meta (a file), bom, final_nl. Output: the new file on stdout, and KEY=VALUE lines in `meta`
# (old_<key>, error, section). Lines are kept as read ($0, including a CR); output lines are joined
# with "\n" and the final newline is written only if the input had one.
toml_edit_program() {
  cat <<'AWK'
function keyre(k) { return "^[ \t]*(\"" k "\"|'" k "'|" k ")[ \t]*=" }
function count(s, d,   n, i) {
  n = 0
  while ((i = index(s, d)) > 0) { n++; s = substr(s, i + length(d)) }
  return n
}
BEGIN {
  nk = split(keys, key, " "); split(values, want, " ")
  n = 0; in_tbl = 0; tbl_hdr = 0; last_kv = 0; in_root = 1; ml = ""; err = ""; eol = ""
  t = "(" table "|\"" table "\"|'" table "')"
  hdr_re = "^[ \t]*\\[[ \t]*" t "[ \t]*\\][ \t]*(#.*)?$"
  arr_re = "^[ \t]*\\[\\[[ \t]*" t "[ \t]*\\]\\]"
  root_re = "^[ \t]*" t "[ \t]*[.=]"
  alt = key[1]
  for (i = 2; i <= nk; i++) alt = alt "|" key[i]
  anykey_re = keyre("(" alt ")")
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
    if (in_tbl && line ~ anykey_re) err = "a [" table "] key has a multi-line value; edit it by hand"
    next
  }
  if (line ~ /^[ \t]*\[/) {
    in_root = 0
    if (line ~ arr_re) err = "the file has an array of tables [[" table "]]; edit it by hand"
    in_tbl = (line ~ hdr_re)
    if (in_tbl) {
      if (tbl_hdr) err = "the file defines [" table "] twice (invalid TOML)"
      tbl_hdr = n; last_kv = n
    }
    next
  }
  if (in_root && line ~ root_re) err = "the file defines " table " with dotted keys or an inline table; edit it by hand"
  if (!in_tbl || line ~ /^[ \t]*(#.*)?$/) next
  last_kv = n
  for (i = 1; i <= nk; i++) {
    if (line !~ keyre(key[i])) continue
    if (found[i]) err = "[" table "] " key[i] " is defined twice (invalid TOML)"
    found[i] = n
    match(line, /^[^=]*=[ \t]*/)
    prefix = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
    if (rest ~ /^"/) match(rest, /^"[^"]*"/)
    else if (rest ~ /^'/) match(rest, /^'[^']*'/)
    else match(rest, /^[^ \t#]+/)
    if (RSTART == 0 || rest ~ /^[[{]/) { err = "cannot edit the value of [" table "] " key[i] " (empty, array or table)"; continue }
    old[i] = substr(rest, 1, RLENGTH); tail = substr(rest, RLENGTH + 1)
    if (tail !~ /^[ \t]*(#.*)?$/) err = "unexpected text after the value of [" table "] " key[i]
    if (old[i] != want[i]) out[n] = prefix want[i] tail cr
  }
}
END {
  if (ml != "") err = "unterminated multi-line string"
  if (err != "") { print "error=" err > meta; exit 3 }
  for (i = 1; i <= nk; i++) {
    v = old[i]; sub(/^["']/, "", v); sub(/["']$/, "", v)
    print "old_" key[i] "=" (found[i] ? v : "") > meta
  }
  print "section=" (tbl_hdr ? "existing" : "created") > meta
  m = 0
  if (tbl_hdr) {
    for (j = 1; j <= n; j++) {
      res[++m] = out[j]
      if (j == n) last_in = m
      if (j == last_kv) for (i = 1; i <= nk; i++) if (!found[i]) res[++m] = key[i] " = " want[i] eol
    }
  } else {
    for (j = 1; j <= n; j++) res[++m] = out[j]
    last_in = m
    if (m > 0 && res[m] !~ /^[ \t\r]*$/) res[++m] = eol
    res[++m] = "[" table "]" eol
    for (i = 1; i <= nk; i++) res[++m] = key[i] " = " want[i] eol
  }
  # Lines added after the file's last line, in a file that does not end with a newline: that line
  # gets the file's line end, and the new last line none (the file still does not end with one).
  if (!final_nl && n > 0 && m > last_in) { res[last_in] = res[last_in] eol; sub(/\r$/, "", res[m]) }
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

# Sets keys of one table: toml_set_keys IN OUT META TABLE KEY=VALUE... (keys plain names, values
# TOML literals without spaces, checked by the caller). Writes the new file to OUT and the meta
# lines to META; returns awk's status (3: refused, the reason in META).
toml_set_keys() {
  local in=$1 out=$2 meta=$3 table=$4 kv keys='' values=''
  shift 4
  for kv in "$@"; do
    keys+=" ${kv%%=*}"
    values+=" ${kv#*=}"
  done
  awk -v table="$table" -v keys="${keys# }" -v values="${values# }" -v meta="$meta" -v bom=$'\xef\xbb\xbf' \
    -v final_nl="$(ends_with_newline "$in")" "$(toml_edit_program)" "$in" >"$out"
}

# Reads the meta lines of one edit: old_<key> values into the associative array named $2 (as
# <prefix><key>, the prefix $3, default none), TOML_ERROR and TOML_SECTION.
toml_read_meta() {
  local -n into=$2
  local prefix=${3:-} k v
  TOML_ERROR='' TOML_SECTION=''
  while IFS='=' read -r k v; do
    case "$k" in
      error) TOML_ERROR=$v ;;
      section) TOML_SECTION=$v ;;
      old_*) into[$prefix${k#old_}]=$v ;;
    esac
  done <"$1"
}

show_diff() {
  if command -v diff >/dev/null 2>&1; then
    diff -u --label "$CONFIG" --label "$CONFIG (new)" -- "$CONFIG" "$CANDIDATE" || true
  else
    log "diff not installed; the new file would be:"
    cat -- "$CANDIDATE"
  fi
}

restart_service() {
  log "restarting $SERVICE"
  systemctl restart "$SERVICE"
}

# A directory of this run's own next to the config (mktemp -d: 0700, a name no one can predict):
# what is made inside it cannot be swapped for a symlink by anyone but root, and it is on the
# config's filesystem, so link(2) and rename(2) from it to the final names are atomic.
private_dir() {
  local dir=${CONFIG%/*}
  [[ -n $PRIVATE_DIR ]] && return 0
  PRIVATE_DIR=$(mktemp -d -p "${dir:-/}" ".${CONFIG##*/}.$SCRIPT_NAME.XXXXXX")
}

# Backs the config up next to itself (lib/file-backup.sh's link_backup, from a copy in the private
# directory): BACKUP is the backup's name, BACKUP_COPY the copy it links.
make_backup() {
  private_dir || fail "could not create a temp directory next to $CONFIG (is the root disk full?); nothing changed"
  link_backup "$CONFIG" "$PRIVATE_DIR/backup" || fail "$BACKUP_PROBLEM; nothing changed"
  BACKUP=$BACKUP_NAME BACKUP_COPY=$PRIVATE_DIR/backup
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

# Everything before the decision: temp files removed at exit, the tools (the script's
# check_tools), the file, the lock (not in a dry run), a work directory, the candidate (the
# script's build_candidate), and whether the service is healthy now.
start_config_edit() {
  trap cleanup_temp EXIT
  check_tools
  check_config_file
  if [[ $DRY_RUN == false ]]; then lock_config_dir; fi
  make_work_dir
  build_candidate
  if health_once 3; then HEALTHY_BEFORE=true; fi
}

# Backs the config up next to it, then installs the candidate over it (atomic).
install_candidate() {
  make_backup
  install_config "$CANDIDATE" || fail "could not write $CONFIG (is the root disk full?); the old file is unchanged"
  CONFIG_CHANGED=true
  log "wrote $CONFIG"
}

# Restores the backup over the config, restarts the service (when $2 is true) and checks its
# health; always ends the run through `fail`, with a reason saying what happened.
roll_back() {
  local why=$1 restart=${2:-true}
  log "$why; restoring $BACKUP"
  if ! install_config "$BACKUP_COPY"; then
    fail "$why; the rollback FAILED: could not restore $BACKUP over $CONFIG (restore it by hand, then restart $SERVICE)"
  fi
  ROLLED_BACK=true CONFIG_CHANGED=false
  reset_after_values
  if [[ $restart == false ]]; then
    fail "$why; rolled back $CONFIG from $BACKUP (the service was not restarted)"
  fi
  if restart_service && wait_healthy "$HEALTH_TIMEOUT"; then
    ROLLBACK_HEALTHY=true
    fail "$why; rolled back $CONFIG from $BACKUP and restarted $SERVICE: healthy again with the old config"
  fi
  ROLLBACK_HEALTHY=false
  local before_note=''
  [[ $HEALTHY_BEFORE == false ]] && before_note=' (it was not healthy before this run either)'
  fail "$why; rolled back $CONFIG from $BACKUP and restarted $SERVICE, but it is STILL NOT healthy at $HEALTH_URL$before_note: act now"
}

# Restarts the service with the new config and waits for health; rolls back (and ends the run)
# when either fails. $1 names the change in the reasons, e.g. "the new [wal] settings".
restart_healthy_or_roll_back() {
  RESTARTED=true
  if ! restart_service; then
    roll_back "systemctl restart $SERVICE failed with $1"
  fi
  if ! wait_healthy "$HEALTH_TIMEOUT"; then
    roll_back "$SERVICE did not become healthy at $HEALTH_URL within ${HEALTH_TIMEOUT} s with $1"
  fi
  HEALTHY=true
  log "$SERVICE is healthy"
}
