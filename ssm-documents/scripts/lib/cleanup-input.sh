# shellcheck shell=bash
# lib/cleanup-input.sh: how the two deleting cleanup scripts (emergency-cleanup.sh, runbook §1,
# and inode-cleanup.sh, §4) read their parameters and refuse a run: strictly, before anything
# is looked at or deleted; and how they end a run that recorded problems.
#
# Included like lib/common.sh (one `source` line with the inline marker, after lib/common.sh,
# whose `json_str` and `log` it uses and whose `param` it replaces). It defines functions and
# PROBLEMS, the list of what went wrong in a run that goes on (one-line reasons, reported in the
# result line and by exit_on_problems).

# Ends the run before anything changed: the reason on stderr, {"status":"refused","reason"} as the
# result line, exit 2.
refuse() {
  printf '%s: %s\n' "$SCRIPT_NAME" "$1" >&2
  printf '{"status":"refused","reason":%s}\n' "$(json_str "$1")"
  exit 2
}

PROBLEMS=()

# After the result line: when the run recorded problems, they go to stderr on one line and the
# run exits 1; otherwise it returns.
exit_on_problems() {
  if ((${#PROBLEMS[@]} > 0)); then
    log "${PROBLEMS[*]}"
    exit 1
  fi
}

# param OUT NAME REGEX DEFAULT [MAX_LENGTH]: reads SSM_<NAME> (or the default when unset), checks
# it, stores it in OUT. Unlike lib/common.sh's param, a value set but empty stays empty (REGEX
# decides whether that is allowed), and a value not matching REGEX, or longer than MAX_LENGTH
# characters when given, is refused.
param() {
  local out=$1 name=$2 re=$3 default=$4 max=${5:-} var value
  var="SSM_$name"
  value=${!var-$default}
  [[ -z $max ]] || ((${#value} <= max)) || refuse "$name is invalid: must match $re"
  [[ $value =~ $re ]] || refuse "$name is invalid: must match $re"
  printf -v "$out" '%s' "$value"
}
