# shellcheck shell=bash
# lib/common.sh: the small helpers the host scripts in ssm-documents/scripts share.
#
# A script sets SCRIPT_NAME (the prefix of its stderr lines, e.g. SCRIPT_NAME=disk-report), then
# includes this file with one `source` line carrying the inline marker (the exact form is
# INCLUDE_LINE in lib/command-document.ts; every script in ssm-documents/scripts shows it). Run
# from the repository, the script sources this file. On a host there is no sibling file: at synth,
# lib/command-document.ts replaces that line with this file's text, so the SSM Command document
# carries one self-contained script.
#
# This file defines functions and the readonly input patterns below: it runs nothing else. A
# script that needs a different variant of a function defines its own after the include (the
# later definition wins). Like the scripts, it never contains a double opening brace (SSM would
# read it as a parameter).
#
# The input patterns the host scripts share, one name each. Each is, character for character, the
# allowedPattern of the Command document parameters that take such a value, so a script run by
# itself refuses what SendCommand would; a pattern only one script uses stays in that script.
#   PATH_SEGMENT_RE    a path segment of letters, digits, . _ - that is not "." or ".."
#   MOUNT_POINT_RE     a mount point: / or an absolute path of such segments
#   DIR_RE             an absolute directory of such segments, not / itself
#   OPTIONAL_DIR_RE    empty, or an absolute directory of such segments
#   PLAIN_PATH_RE      an absolute path of 1 to 16 plain names (no leading dot), each at most 128
#                      characters
#   SERVICE_RE         a systemd unit name
#   BASE_URL_RE        the database API on this host: http://localhost or http://127.0.0.1, an
#                      optional port, no path
#   HEALTH_URL_RE      a health endpoint on this host: the same, with a path
#   HEALTH_TIMEOUT_RE  seconds to wait for health after a start: 1 to 600
#   PERCENT_RE         a whole percentage: 0 to 100

# Progress and reasons go to stderr, one line each, prefixed with the script's name.
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }

# Ends the run: the reason on stderr, exit 1.
die() {
  printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# Ends the run of a script that prints a JSON result: REASON=$2, the script's print_result (which
# reports REASON), the reason on stderr, exit $1.
end_run() {
  REASON=$2
  print_result
  log "$REASON"
  exit "$1"
}

# A JSON string: control characters dropped, apart from \n, \t and \r, which are escaped.
json_str() {
  local s
  s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  printf '"%s"' "$s"
}

# A JSON string, or null when $1 is empty.
json_or_null() { if [[ -n $1 ]]; then json_str "$1"; else printf 'null'; fi; }

# A JSON array of strings (each through json_str): json_array ITEM...
json_array() {
  local first=1 item
  printf '['
  for item in "$@"; do
    if ((first)); then first=0; else printf ','; fi
    json_str "$item"
  done
  printf ']'
}

# The shared input patterns (named in the header above).
# shellcheck disable=SC2034 # each script reads the patterns its own parameters need
{
  readonly PATH_SEGMENT_RE='(\.{0,2}[A-Za-z0-9_-][A-Za-z0-9._-]*|\.{3,}[A-Za-z0-9._-]*)'
  readonly MOUNT_POINT_RE="^(/|(/${PATH_SEGMENT_RE})+)\$"
  readonly DIR_RE="^(/${PATH_SEGMENT_RE})+\$"
  readonly OPTIONAL_DIR_RE="^(/${PATH_SEGMENT_RE})*\$"
  readonly PLAIN_PATH_RE='^(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,16}$'
  readonly SERVICE_RE='^[A-Za-z0-9][A-Za-z0-9@._-]{0,99}$'
  readonly BASE_URL_RE='^http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?$'
  readonly HEALTH_URL_RE='^http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?/[A-Za-z0-9._/-]*$'
  readonly HEALTH_TIMEOUT_RE='^([1-9][0-9]{0,1}|[1-5][0-9]{2}|600)$'
  readonly PERCENT_RE='^([0-9]{1,2}|100)$'
}

# Reads and checks one SSM_ variable into a shell variable: param OUT NAME REGEX DEFAULT.
# An empty or unset value takes the default; a value not matching REGEX ends the run through the
# script's own `refuse CODE REASON` with code 2.
param() {
  local out=$1 name=$2 re=$3 default=$4 var value
  var="SSM_$name"
  value=${!var:-$default}
  [[ "$value" =~ $re ]] || refuse 2 "invalid $name: must match $re"
  printf -v "$out" '%s' "$value"
}

# a / b × 100 with two decimals (0 when b is 0).
percent() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a * 100 / b; else printf "0" }'; }

# Compares decimals: is_less A B → true when A < B.
is_less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# Is the time $1 later than $2? Both as find -printf '%T@' prints them (seconds, a dot, the
# fraction): compared exactly as integers, never as floats, so segments written in the same
# second are still told apart. The newest WAL segment is the one with the latest such time.
mtime_after() {
  local a_s=${1%.*} b_s=${2%.*} a_f=${1#*.}0000000000 b_f=${2#*.}0000000000
  [[ $1 == *.* ]] || a_f=0000000000
  [[ $2 == *.* ]] || b_f=0000000000
  ((a_s > b_s || (a_s == b_s && 10#${a_f:0:10} > 10#${b_f:0:10})))
}

# Bytes available to unprivileged users on the filesystem holding path $1.
avail_bytes() { df -B1 --output=avail -- "$1" | tail -n 1 | tr -d ' '; }

# Prints "<device>:<inode>" of every file some process has open or mapped (/proc/*/fd and
# /proc/*/map_files, followed with find -L): matching by inode, not by path, also catches a
# file opened through another path (a bind mount or a symlinked directory).
open_file_ids() {
  find -L /proc/[0-9]*/fd /proc/[0-9]*/map_files -mindepth 1 -maxdepth 1 -printf '%D:%i\n' 2>/dev/null || true
}
