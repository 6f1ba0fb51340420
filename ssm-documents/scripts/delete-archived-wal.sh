#!/usr/bin/env bash
# delete-archived-wal.sh: delete phase of WAL archival (runbook §5C and §2), run by the
# <Prefix>-Host-DeleteArchivedWal Command document after the verify-archive Lambda.
#
# Reads (the document's allowedPattern checks them first; this script checks them again):
#   SSM_WalDir       absolute path of the WAL directory, e.g. /data/wal
#   SSM_Bucket       archive bucket name
#   SSM_Prefix       key prefix ending in '/', e.g. wal/node-1/
#   SSM_DryRun       true|false: true does every check (hashes included) and deletes nothing
#   SSM_EndpointUrl  optional S3 endpoint; '' for the default
#
# Deletes a local file only when ALL of these hold:
#   - the verified manifest <Prefix>_manifest/verified.json (written by the verify-archive Lambda
#     after HeadObject showed the object in S3 with the same size and SHA-256) names it;
#   - that manifest is for this bucket and prefix, and its runId equals the runId of the current
#     upload manifest <Prefix>_manifest/upload.json (so a stale verified manifest from an earlier
#     run, left behind when this run's verification refused or failed, is never used);
#   - it is a regular file directly in WalDir (not a symlink, same filesystem as WalDir), not open
#     or mapped by any process, and its size and SHA-256 equal the manifest's, and its size, mtime
#     and inode did not change while it was being checked;
#   - it is not the newest file in WalDir (the segment being written: the latest mtime to the
#     nanosecond, find's %T@), nor tied with it: kept whatever the manifest says;
#   - S3 still holds its key with the verified size, as one ListObjectsV2 of the prefix at the
#     start of this run shows (a key deleted or replaced since the verification is kept and
#     reported). The host is a second layer behind the bucket policy and the verifier.
# Why one listing and not a HeadObject per file: measured on moto_server with 1,000 segments, the
# paged listing (one request per 1,000 keys, one CLI process) took 0.9 s; a HeadObject per file
# took 4.5 s from one botocore process with 16 threads (1,000 requests) and about 10 minutes with
# one CLI process per file. The listing gives key and size, not the checksum: the checksum is
# the verifier's check; this one is that the object is still there. The node's instance role needs
# s3:ListBucket on the bucket with s3:prefix like <Prefix>* (the stack's node policy grants it).
# With no verified manifest, an unreadable or malformed one, or one for another bucket, prefix or
# run, or when the prefix cannot be listed, it deletes nothing ("refused").
#
# Prints progress on stderr and, as the last stdout line, one JSON object: status (ok, dry-run,
# refused), files deleted, bytes freed, free bytes before/after, files kept by reason and the
# first few kept files. Exit 0 on ok/dry-run; 1 with a one-line reason on stderr on a refusal or
# fault (in DryRun a refusal is reported with exit 0: DryRun reports, it does not act).
# Temp files (the manifests) go to a tmpfs, never to the WAL filesystem.
set -euo pipefail

# Set by lib/wal-archive.sh: the parameters (read_archive_location), the resolved WAL directory
# and its device (resolve_wal_dir), this run's temp directory (make_tmp_dir).
wal_dir='' bucket='' prefix='' dry_run='' endpoint='' wal_dev='' tmp=''

readonly VERIFIED_NAME='_manifest/verified.json'
readonly UPLOAD_NAME='_manifest/upload.json'
readonly MAX_LISTED=5

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='delete-archived-wal'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/wal-archive.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/wal-archive.sh" # stemedb:inline lib/wal-archive.sh

read_parameters() {
  read_archive_location
  endpoint_args=()
  [[ -n $endpoint ]] && endpoint_args=(--endpoint-url "$endpoint")
  return 0
}

check_tools() {
  command -v aws >/dev/null 2>&1 || die "the aws CLI is not installed"
  command -v jq >/dev/null 2>&1 || die "jq is not installed (needed to read the manifest)"
}

free_bytes() { avail_bytes "$wal_dir"; }

# Ends the run having deleted nothing: JSON on stdout, the reason on stderr.
refuse() {
  local reason=$1
  jq -cn --arg reason "$reason" --argjson dryRun "$dry_run" --arg walDir "$wal_dir" --arg bucket "$bucket" \
    --arg prefix "$prefix" --argjson free "$(free_bytes)" \
    '{status: "refused", reason: $reason, dryRun: $dryRun, walDir: $walDir, bucket: $bucket, prefix: $prefix,
      deleted: 0, bytesFreed: 0, freeBytesBefore: $free, freeBytesAfter: $free}'
  log "refused, nothing deleted: $reason"
  [[ $dry_run == true ]] && exit 0
  exit 1
}

# Downloads s3://bucket/<prefix><name> to $2; returns 2 when the object does not exist.
download() {
  local key=$prefix$1 target=$2 err
  if err=$(aws "${endpoint_args[@]}" s3api get-object --bucket "$bucket" --key "$key" "$target" 2>&1 >/dev/null); then
    return 0
  fi
  if [[ $err == *NoSuchKey* || $err == *'(404)'* ]]; then return 2; fi
  die "cannot read s3://$bucket/$key: $(tail -n 1 <<<"$err")"
}

# Fetches both manifests and refuses unless the verified one belongs to this bucket, prefix and run.
load_verified_manifest() {
  local rc=0 problem
  download "$VERIFIED_NAME" "$tmp/verified.json" || rc=$?
  ((rc == 0)) || refuse "no verified manifest at s3://$bucket/$prefix$VERIFIED_NAME"
  download "$UPLOAD_NAME" "$tmp/upload.json" || rc=$?
  ((rc == 0)) || refuse "no upload manifest at s3://$bucket/$prefix$UPLOAD_NAME to match the verified one against"
  problem=$(jq -rs --arg bucket "$bucket" --arg prefix "$prefix" '
    .[0] as $v | .[1] as $u
    | def bad_name: length == 0 or . == "." or . == ".." or (explode | any(. < 32 or . == 127 or . == 47));
      def bad_entry: (.key | type) != "string" or (.key | startswith($prefix) | not)
        or (.key[($prefix | length):] | bad_name)
        or (.size | type) != "number" or .size < 0 or .size > 1e15 or .size != (.size | floor)
        or (.sha256 | type) != "string" or (.sha256 | test("\\A[0-9a-f]{64}\\z") | not)
        or .status != "verified";
    if ($v | type) != "object" or $v.kind != "stemedb-wal-verified-manifest" then "it is not a verified WAL manifest"
    elif $v.version != 1 then "unsupported manifest version \($v.version)"
    elif $v.bucket != $bucket then "it is for bucket \($v.bucket), not \($bucket)"
    elif $v.prefix != $prefix then "it is for prefix \($v.prefix), not \($prefix)"
    elif ($v.entries | type) != "array" then "it has no entries list"
    elif ($u | type) != "object" or $u.bucket != $bucket or $u.prefix != $prefix then "the upload manifest is for another bucket or prefix"
    elif ($v.runId | type) != "string" or $v.runId != $u.runId then "it verifies run \($v.runId), but the latest upload is run \($u.runId)"
    elif ($v.entries | map(select(bad_entry)) | length) > 0 then "entry \($v.entries | map(select(bad_entry)) | .[0].key | tojson) is malformed or outside the prefix"
    else "" end' "$tmp/verified.json" "$tmp/upload.json" 2>/dev/null) || problem="it is not valid JSON"
  [[ -z $problem ]] || refuse "the verified manifest is unusable: $problem"
  run_id=$(jq -r .runId "$tmp/verified.json")
  verified_at=$(jq -r '.verifiedAt // ""' "$tmp/verified.json")
  # size/sha256/name records, NUL-separated (names may hold spaces; never '/' or NUL).
  jq -j --arg prefix "$prefix" '.entries[] | "\(.size)/\(.sha256)/\(.key[($prefix | length):])\u0000"' \
    "$tmp/verified.json" >"$tmp/entries"
}

# Fills the associative array named $1 with name -> type/mtime/size/dev/inode for manifest names
# (mtime as find's %T@, to the nanosecond), and sets newest_mtime: the latest mtime of any regular
# file in WalDir on its filesystem (the segment being written has it, and so does any tie).
snapshot_wal_dir() {
  local -n into=$1
  local type mtime size dev inode name
  newest_mtime=''
  while IFS=/ read -r -d '' type mtime size dev inode name; do
    if [[ $type == f && $dev == "$wal_dev" ]] && { [[ -z $newest_mtime ]] || mtime_after "$mtime" "$newest_mtime"; }; then
      newest_mtime=$mtime
    fi
    if [[ -n ${want_size[$name]:-} ]]; then
      # shellcheck disable=SC2034,SC2004 # `into` is a nameref to an associative array
      into[$name]="$type/$mtime/$size/$dev/$inode"
    fi
  done < <(find -P "$wal_dir" -mindepth 1 -maxdepth 1 -printf '%y/%T@/%s/%D/%i/%f\0')
}

# One ListObjectsV2 of the prefix (the CLI pages it: one request per 1,000 keys) into s3_size:
# name -> size of every object S3 holds now. Refuses (deletes nothing) when the listing fails.
list_archive() {
  local size name
  declare -gA s3_size=()
  if ! aws "${endpoint_args[@]}" s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix" --page-size 1000 \
    --output json >"$tmp/listing.json" 2>"$tmp/listing.err"; then
    refuse "cannot list s3://$bucket/$prefix to re-check the verified keys: $(tail -n 1 "$tmp/listing.err")"
  fi
  # An empty prefix may print nothing at all: no objects.
  jq -j --arg prefix "$prefix" '(.Contents // [])[] | select(.Key | startswith($prefix))
    | "\(.Size)/\(.Key[($prefix | length):])\u0000"' "$tmp/listing.json" >"$tmp/in-s3" ||
    refuse "cannot read the listing of s3://$bucket/$prefix"
  while IFS=/ read -r -d '' size name; do
    # shellcheck disable=SC2034 # read in check_entries
    s3_size[$name]=$size
  done <"$tmp/in-s3"
  log "S3 holds ${#s3_size[@]} object(s) under s3://$bucket/$prefix"
}

# Records a file that is kept, one "name<TAB>reason" line (manifest names hold no control characters).
keep() {
  printf '%s\t%s\n' "$1" "$2" >>"$tmp/kept"
}

# One batch of files (absolute paths) to "<hex> *<path>\0" records in a file of its own, so
# parallel batches never interleave. openssl uses the CPU's SHA instructions (about 3x sha256sum).
hash_batch() {
  local out
  out=$(mktemp -p "$HASH_DIR" hashed.XXXXXX)
  if command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$@" 2>/dev/null | tr '\n' '\0' >"$out" || true
  else
    sha256sum -z -b -- "$@" >"$out" 2>/dev/null || true
  fi
}

# Hashes the files listed (NUL-separated) in $1, in batches, one batch per CPU at a time.
hash_files() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  export HASH_DIR=$tmp
  export -f hash_batch
  # shellcheck disable=SC2016 # "$@" is expanded by the child bash
  xargs -0 -r -n 64 -P "$jobs" bash -c 'hash_batch "$@"' _ <"$1"
}

# Decides per manifest entry; hashes the candidates in parallel batches (hash_files).
check_entries() {
  local size sha name type mtime lsize dev inode line hex path
  local -A before=() after=() open=()
  local newest_mtime
  declare -gA want_size=() want_sha=()
  while IFS=/ read -r -d '' size sha name; do
    want_size[$name]=$size
    want_sha[$name]=$sha
  done <"$tmp/entries"
  while IFS= read -r id; do open[$id]=1; done < <(open_file_ids)
  snapshot_wal_dir before
  : >"$tmp/kept"
  : >"$tmp/to-hash"
  not_present=0
  for name in "${!want_size[@]}"; do
    if [[ -z ${before[$name]:-} ]]; then
      not_present=$((not_present + 1))
      continue
    fi
    IFS=/ read -r type mtime lsize dev inode <<<"${before[$name]}"
    if [[ $type == l ]]; then keep "$name" 'symlink'
    elif [[ $type != f ]]; then keep "$name" 'not a regular file'
    elif [[ $dev != "$wal_dev" ]]; then keep "$name" 'on another filesystem'
    elif [[ $mtime == "$newest_mtime" ]]; then keep "$name" 'newest segment'
    elif [[ -n ${open[$dev:$inode]:-} ]]; then keep "$name" 'open by a process'
    elif [[ $lsize != "${want_size[$name]}" ]]; then keep "$name" 'size differs from the verified archive'
    elif [[ -z ${s3_size[$name]:-} ]]; then keep "$name" 'not in S3'
    elif [[ ${s3_size[$name]} != "${want_size[$name]}" ]]; then keep "$name" 'size in S3 differs from the verified archive'
    else printf '%s\0' "$wal_dir/$name" >>"$tmp/to-hash"
    fi
  done
  hash_files "$tmp/to-hash"
  declare -gA local_sha=()
  while IFS= read -r -d '' line; do
    hex=${line:0:64}
    path=${line:66}
    local_sha[${path#"$wal_dir"/}]=$hex
  done < <(cat "$tmp"/hashed.* 2>/dev/null)
  snapshot_wal_dir after
  : >"$tmp/delete"
  deleting_bytes=0
  while IFS= read -r -d '' path; do
    name=${path#"$wal_dir"/}
    if [[ -z ${local_sha[$name]:-} ]]; then keep "$name" 'unreadable'
    elif [[ ${local_sha[$name]} != "${want_sha[$name]}" ]]; then keep "$name" 'sha256 differs from the verified archive'
    elif [[ ${after[$name]:-} != "${before[$name]}" ]]; then keep "$name" 'changed while being checked'
    else
      printf '%s\0' "$path" >>"$tmp/delete"
      size=${want_size[$name]} # never a name inside $(( )): bash would evaluate it
      deleting_bytes=$((deleting_bytes + size))
    fi
  done <"$tmp/to-hash"
}

# Deletes the files in $tmp/delete (one rm per batch) and counts what is really gone.
delete_files() {
  local path name size
  deleted=0 bytes_freed=0
  if [[ $dry_run == true ]]; then
    deleted=$(tr -cd '\0' <"$tmp/delete" | wc -c)
    bytes_freed=$deleting_bytes
    log "DryRun: would delete $deleted file(s), $bytes_freed bytes"
    return
  fi
  xargs -0 -r -n 256 rm -f -- <"$tmp/delete" || true
  while IFS= read -r -d '' path; do
    name=${path#"$wal_dir"/}
    if [[ -e $path || -L $path ]]; then
      keep "$name" 'rm failed'
    else
      deleted=$((deleted + 1))
      size=${want_size[$name]}
      bytes_freed=$((bytes_freed + size))
    fi
  done <"$tmp/delete"
  log "deleted $deleted file(s), $bytes_freed bytes"
}

print_summary() {
  local free_before=$1
  jq -Rsc --argjson dryRun "$dry_run" --arg walDir "$wal_dir" --arg bucket "$bucket" --arg prefix "$prefix" \
    --arg runId "$run_id" --arg verifiedAt "$verified_at" --argjson entries "${#want_size[@]}" \
    --argjson deleted "$deleted" --argjson bytesFreed "$bytes_freed" --argjson notPresent "$not_present" \
    --argjson freeBefore "$free_before" --argjson freeAfter "$(free_bytes)" --argjson max "$MAX_LISTED" \
    '(split("\n") | map(select(length > 0) | split("\t") | {name: .[0], reason: .[1]})) as $kept
     | {status: (if $dryRun then "dry-run" else "ok" end), dryRun: $dryRun, walDir: $walDir, bucket: $bucket,
        prefix: $prefix, runId: $runId, verifiedAt: $verifiedAt, verifiedEntries: $entries,
        (if $dryRun then "wouldDelete" else "deleted" end): $deleted,
        (if $dryRun then "wouldFreeBytes" else "bytesFreed" end): $bytesFreed,
        notPresent: $notPresent, kept: ($kept | length),
        keptByReason: ($kept | group_by(.reason) | map({key: .[0].reason, value: length}) | from_entries),
        firstKept: $kept[:$max], freeBytesBefore: $freeBefore, freeBytesAfter: $freeAfter}' "$tmp/kept"
}

main() {
  local free_before
  local -a endpoint_args=()
  read_parameters
  resolve_wal_dir
  make_tmp_dir
  check_tools
  free_before=$(free_bytes)
  load_verified_manifest
  list_archive
  check_entries
  delete_files
  print_summary "$free_before"
}

main "$@"
