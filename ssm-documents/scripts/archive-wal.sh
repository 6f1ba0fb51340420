#!/usr/bin/env bash
# archive-wal.sh: upload phase of WAL archival to S3 (runbook §5C and §2), run by the
# <Prefix>-Host-ArchiveWal Command document. Verification (verify-archive Lambda) and deletion
# (delete-archived-wal.sh) are separate phases; this script never deletes anything.
#
# Reads (all required unless noted; the document's allowedPattern checks them first, and this
# script checks them again so it is safe to run by hand):
#   SSM_WalDir         absolute path of the WAL directory, e.g. /data/wal
#   SSM_Bucket         archive bucket name
#   SSM_Prefix         key prefix ending in '/', e.g. wal/node-1/  (its last part is the node name)
#   SSM_OlderThanDays  archive only segments last modified more than this many days ago (0-9999)
#   SSM_Concurrency    parallel uploads (1-64)
#   SSM_DryRun         true|false: true selects, hashes and looks up every key, uploads nothing
#   SSM_EndpointUrl    optional S3 endpoint (VPC endpoint, S3-compatible store); '' for the default
#
# Prints progress on stderr and, as the last stdout line, one JSON object: counts per status,
# bytes, what was skipped and why, the first few conflicts and failures, and the manifest key.
# Exit 0 when the manifest is written (conflicts and per-file failures are reported in it, and
# those files are simply not archived), 1 with a one-line reason on stderr otherwise.
#
# What is selected: regular files directly in WalDir (find -P -xdev -maxdepth 1 -type f: never a
# symlink, never a subdirectory, never another filesystem; the device is compared again per
# file), last modified more than OlderThanDays days and at least MIN_AGE_MINUTES minutes ago,
# except the newest file (the segment being written: latest mtime to the nanosecond, and every file
# tied with it), any file open or mapped by a process
# (/proc/*/fd and /proc/*/map_files, matched by device and inode; no lsof/fuser needed), and any
# name that is not UTF-8 or holds a control character (kept and reported, the name escaped as
# \xHH: an S3 key must be UTF-8, and such a key could not be checked safely later).
#
# How each file is uploaded: one PutObject with x-amz-checksum-sha256 (the SHA-256 computed here)
# and If-None-Match: * (create-only). S3 rejects a body that does not match the checksum, so an
# object that exists under the key holds exactly the hashed bytes. 412 PreconditionFailed means
# the key already exists: HeadObject with checksum mode gives its stored SHA-256 and size; equal
# means already-archived, different (or no stored SHA-256) means conflict: the local file is kept
# and reported. A file whose size or mtime changes during its upload is reported failed.
#
# Design for speed: one AWS CLI process costs about 0.4 s of CPU before it sends a byte, so
# 10,000 segments must not mean 10,000 processes. The script finds the Python interpreter that
# runs `aws` (the AWS CLI v1 is a Python script whose #! line names it; a pyenv shim is resolved
# with `pyenv which`) and, when that Python imports botocore, runs a small embedded helper with
# it: the same botocore, credential chain and config files as the CLI, one process, one
# connection pool, a thread pool of Concurrency workers, results streamed as JSON lines to a
# tmpfs file (memory stays bounded by Concurrency, not by the number of files). When `aws` is
# not such a program (the bundled CLI v2 installer), the script falls back to one
# `aws s3api put-object` per file with the same flags, Concurrency at a time (xargs -P):
# correct, but slow for many small files. Measured with bench/archive-wal.ts against
# moto_server on 2 cores: 10,000 x 64 KiB uploaded in about 35 s, where one `aws s3 cp` per
# file takes about 87 minutes.
#
# The manifest (JSON: kind, version, runId, node, bucket, prefix, walDir, createdAt, entries of
# {key, size, sha256 (lowercase hex), status[, reason]}) is written to <Prefix>_manifest/upload.json
# (a key no segment can take: segment names contain no '/'). Status is one of uploaded,
# already-archived, conflict, failed. It is overwritten by each run (the bucket is versioned).
#
# Nothing is written to the WAL filesystem: temp files go to a tmpfs (/dev/shm or /run), or to a
# directory on another filesystem; the script refuses to run otherwise.
set -euo pipefail

# Set by lib/wal-archive.sh: the parameters (read_archive_location), the resolved WAL directory
# and its device (resolve_wal_dir), this run's temp directory (make_tmp_dir).
wal_dir='' bucket='' prefix='' dry_run='' endpoint='' wal_dev='' tmp=''

# A segment modified less than this many minutes ago is never archived, whatever OlderThanDays.
readonly MIN_AGE_MINUTES=10
readonly MANIFEST_NAME='_manifest/upload.json'
readonly MAX_LISTED=5
readonly RE_DAYS='^[0-9]{1,4}$'
readonly RE_CONCURRENCY='^([1-9]|[1-5][0-9]|6[0-4])$'
# Well-formed UTF-8, byte by byte (no overlong forms, no surrogates, nothing above U+10FFFF).
readonly RE_UTF8=$'^([\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf][\x80-\xbf]|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf][\x80-\xbf]|[\xf1-\xf3][\x80-\xbf][\x80-\xbf][\x80-\xbf]|\xf4[\x80-\x8f][\x80-\xbf][\x80-\xbf])*$'

# shellcheck disable=SC2034 # read by lib/common.sh: the prefix of every stderr line
SCRIPT_NAME='archive-wal'
# shellcheck source=lib/common.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh" # stemedb:inline lib/common.sh
# shellcheck source=lib/wal-archive.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/wal-archive.sh" # stemedb:inline lib/wal-archive.sh

# Checks every SSM_* value against its pattern; sets the global configuration.
read_parameters() {
  read_archive_location
  older_than_days=${SSM_OlderThanDays:-}
  concurrency=${SSM_Concurrency:-}
  [[ $older_than_days =~ $RE_DAYS ]] || die "OlderThanDays must be 0-9999, got '$older_than_days'"
  [[ $concurrency =~ $RE_CONCURRENCY ]] || die "Concurrency must be 1-64, got '$concurrency'"
  node=${prefix%/}
  node=${node##*/}
}

# jq builds the JSON; the AWS CLI must exist.
check_tools() {
  command -v jq >/dev/null 2>&1 || die "jq is not installed (needed to write the manifest and the JSON result)"
  command -v aws >/dev/null 2>&1 || die "the aws CLI is not installed (need one from August 2024 or newer)"
}

# The CLI's S3 model must know create-only, SHA-256-checked PutObject (AWS CLI from August 2024 on).
check_cli_flags() {
  local skeleton
  skeleton=$(aws s3api put-object --generate-cli-skeleton input 2>/dev/null) ||
    die "aws s3api put-object --generate-cli-skeleton failed: the aws CLI is broken or too old"
  jq -e 'has("IfNoneMatch") and has("ChecksumAlgorithm") and has("ChecksumSHA256")' <<<"$skeleton" >/dev/null ||
    die "the aws CLI ($(aws --version 2>&1)) is too old: put-object lacks --if-none-match/--checksum-algorithm; upgrade it"
}

# Prints the interpreter (one word per line) that runs `aws`, when `aws` is a Python script with botocore.
find_aws_python() {
  local aws_bin first
  local -a interp
  aws_bin=$(command -v aws)
  if [[ $aws_bin == */shims/aws ]] && command -v pyenv >/dev/null 2>&1; then
    aws_bin=$(pyenv which aws 2>/dev/null) || return 1
  fi
  first=$(head -c 256 -- "$aws_bin" | head -n 1 | tr -d '\0')
  [[ $first == '#!'*python* ]] || return 1
  read -r -a interp <<<"${first#\#!}"
  "${interp[@]}" -c 'import botocore.session' >/dev/null 2>&1 || return 1
  printf '%s\n' "${interp[@]}"
}

# Prints the base64 form of a hex digest (S3's x-amz-checksum-sha256 form), with no extra tools.
hex_to_base64() {
  local hex=$1 escaped='' i
  for ((i = 0; i < ${#hex}; i += 2)); do escaped+="\\x${hex:i:2}"; done
  printf '%b' "$escaped" | base64
}

# Is the name $1 well-formed UTF-8? An S3 key must be; ASCII names (nearly all) skip the regex.
is_utf8() {
  [[ $1 != *[![:ascii:]]* ]] && return 0
  local LC_ALL=C
  [[ $1 =~ $RE_UTF8 ]]
}

# The name $1 with every byte outside printable ASCII, and the backslash, written as \xHH: a
# printable, unambiguous form for the JSON result of a name that is not UTF-8 or holds controls.
escape_name() {
  local LC_ALL=C s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    if [[ $c == [[:print:]] && $c != "\\" ]]; then
      out+=$c
    else
      printf -v c '\\x%02X' "'$c"
      out+=$c
    fi
  done
  printf '%s' "$out"
}

# Records a file kept for its name: counted by the caller, the first MAX_LISTED listed (escaped).
keep_unsafe_name() {
  unsafe_listed=$((unsafe_listed + 1))
  ((unsafe_listed <= MAX_LISTED)) && printf '%s\t%s\n' "$(escape_name "$1")" "$2" >>"$tmp/unsafe"
  return 0
}

# Writes the selected names (NUL-separated) to $tmp/selected and counts what was skipped and why.
# The newest segment is the regular file with the latest mtime to the nanosecond (find's %T@, not
# whole seconds: a crash right after rotation leaves several segments written in the same second);
# every file tied with that time is kept as newest too.
select_segments() {
  local now cutoff_minutes cutoff newest_mtime='' type mtime size dev inode name
  local -A open=()
  now=$(date +%s)
  cutoff_minutes=$((older_than_days * 1440))
  ((cutoff_minutes < MIN_AGE_MINUTES)) && cutoff_minutes=$MIN_AGE_MINUTES
  cutoff=$((now - cutoff_minutes * 60))
  while IFS= read -r id; do open[$id]=1; done < <(open_file_ids)

  find -P "$wal_dir" -xdev -mindepth 1 -maxdepth 1 -printf '%y/%T@/%s/%D/%i/%f\0' >"$tmp/listing"
  while IFS=/ read -r -d '' type mtime size dev inode name; do
    if [[ $type == f && $dev == "$wal_dev" ]] && { [[ -z $newest_mtime ]] || mtime_after "$mtime" "$newest_mtime"; }; then
      newest_mtime=$mtime
    fi
  done <"$tmp/listing"

  skipped_not_utf8=0 unsafe_listed=0 skipped_unsafe_name=0 skipped_symlinks=0 skipped_not_regular=0 skipped_other_fs=0 skipped_open=0 skipped_recent=0 skipped_newest=0
  selected=0 selected_bytes=0
  : >"$tmp/selected"
  : >"$tmp/unsafe"
  while IFS=/ read -r -d '' type mtime size dev inode name; do
    case $type in
      f) ;;
      l) skipped_symlinks=$((skipped_symlinks + 1)) && continue ;;
      *) skipped_not_regular=$((skipped_not_regular + 1)) && continue ;;
    esac
    if [[ $dev != "$wal_dev" ]]; then
      skipped_other_fs=$((skipped_other_fs + 1))
    elif ! is_utf8 "$name"; then
      skipped_not_utf8=$((skipped_not_utf8 + 1))
      keep_unsafe_name "$name" 'name is not UTF-8'
    elif [[ $name == *[[:cntrl:]]* ]]; then
      skipped_unsafe_name=$((skipped_unsafe_name + 1))
      keep_unsafe_name "$name" 'control character in name'
    elif [[ $mtime == "$newest_mtime" ]]; then
      skipped_newest=$((skipped_newest + 1))
    elif [[ -n ${open[$dev:$inode]:-} ]]; then
      skipped_open=$((skipped_open + 1))
    elif ((${mtime%.*} > cutoff)); then
      skipped_recent=$((skipped_recent + 1))
    else
      printf '%s\0' "$name" >>"$tmp/selected"
      selected=$((selected + 1))
      selected_bytes=$((selected_bytes + size))
    fi
  done <"$tmp/listing"
  log "selected $selected file(s), $selected_bytes bytes, in $wal_dir ($skipped_newest newest kept," \
    "$skipped_open open, $skipped_recent too recent, $skipped_symlinks symlink(s))"
}

# The batch uploader, run by the Python that runs `aws`. argv: mode wal_dir wal_dev bucket
# prefix concurrency endpoint names_file stats_file; writes one JSON line per file to stdout.
read -r -d '' UPLOADER_PY <<'PY' || true
import base64, hashlib, json, os, resource, stat, sys, threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError

mode, wal_dir, wal_dev, bucket, prefix, concurrency, endpoint, names_file, stats_file = sys.argv[1:10]
wal_dev, concurrency = int(wal_dev), int(concurrency)
IN_MEMORY_MAX = 1 << 20          # files up to 1 MiB are read once and sent from memory
SINGLE_PUT_MAX = 5 * (1 << 30)   # S3's limit for one PUT
abort = threading.Event()
out_lock = threading.Lock()

session = botocore.session.get_session()
s3 = session.create_client('s3', endpoint_url=endpoint or None, config=Config(
    max_pool_connections=concurrency + 2, connect_timeout=10, read_timeout=120,
    retries={'mode': 'standard'}))  # attempts: AWS_MAX_ATTEMPTS / max_attempts in the config, else 3
members = s3.meta.service_model.operation_model('PutObject').input_shape.members
if not all(m in members for m in ('IfNoneMatch', 'ChecksumAlgorithm', 'ChecksumSHA256')):
    sys.exit('botocore ' + botocore.__version__ + ' is too old: PutObject lacks IfNoneMatch/ChecksumSHA256')

def names():
    with open(names_file, 'rb') as f:
        rest = b''
        while chunk := f.read(65536):
            parts = (rest + chunk).split(b'\0')
            rest = parts.pop()
            for p in parts:
                yield os.fsdecode(p)
        if rest:
            yield os.fsdecode(rest)

def compare_existing(rec, sha_b64):
    head = s3.head_object(Bucket=bucket, Key=rec['key'], ChecksumMode='ENABLED')
    stored = head.get('ChecksumSHA256')
    if stored == sha_b64 and head.get('ContentLength') == rec['size']:
        return 'already-archived', None
    if stored is None:
        return 'conflict', 'the existing object has no SHA-256 checksum'
    return 'conflict', 'the existing object has a different SHA-256 or size'

def archive(name):
    rec = {'name': name, 'key': prefix + name}
    if abort.is_set():
        return dict(rec, status='failed', reason='not attempted: S3 unreachable')
    try:
        fd = os.open(os.path.join(wal_dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        return dict(rec, status='failed', reason='cannot open: ' + e.strerror)
    with os.fdopen(fd, 'rb') as f:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_dev != wal_dev:
            return dict(rec, status='failed', reason='not a regular file on the WAL filesystem')
        if before.st_size > SINGLE_PUT_MAX:
            return dict(rec, status='failed', reason='larger than 5 GiB (one PUT)')
        h, size, data = hashlib.sha256(), 0, None
        if before.st_size <= IN_MEMORY_MAX:
            data = f.read(IN_MEMORY_MAX + 1)
            h.update(data)
            size = len(data)
        else:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
        if size != before.st_size:
            return dict(rec, status='failed', reason='changed while being hashed')
        digest = h.digest()
        sha_b64 = base64.b64encode(digest).decode()
        rec.update(size=size, sha256=digest.hex())
        try:
            if mode == 'dry-run':
                try:
                    status, reason = compare_existing(rec, sha_b64)
                except ClientError as e:
                    code = e.response.get('Error', {}).get('Code')
                    if code in ('404', 'NoSuchKey', 'NotFound'):
                        status, reason = 'would-upload', None
                    elif code in ('403', 'AccessDenied', 'Forbidden'):
                        # Without s3:ListBucket on the prefix, S3 answers 403 for a missing key.
                        status, reason = 'would-upload', 'HeadObject 403: cannot tell whether the key exists'
                    else:
                        raise
            else:
                body = data
                if body is None:
                    f.seek(0)
                    body = f
                try:
                    s3.put_object(Bucket=bucket, Key=rec['key'], Body=body, ContentLength=size,
                                  ChecksumAlgorithm='SHA256', ChecksumSHA256=sha_b64, IfNoneMatch='*')
                    status, reason = 'uploaded', None
                except ClientError as e:
                    err = e.response.get('Error', {})
                    http = e.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
                    if err.get('Code') != 'PreconditionFailed' and http != 412:
                        raise
                    status, reason = compare_existing(rec, sha_b64)
        except ClientError as e:
            err = e.response.get('Error', {})
            return dict(rec, status='failed', reason=(err.get('Code') or 'error') + ': ' + (err.get('Message') or ''))
        except BotoConnectionError as e:
            abort.set()
            return dict(rec, status='failed', reason='S3 unreachable: ' + str(e))
        except BotoCoreError as e:
            return dict(rec, status='failed', reason=type(e).__name__ + ': ' + str(e))
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            return dict(rec, status='failed', reason='changed during upload')
    rec['status'] = status
    if reason:
        rec['reason'] = reason
    return rec

def archive_safely(name):
    # One file's unexpected error is that file's failure: it never stops the other uploads.
    try:
        return archive(name)
    except Exception as e:
        return {'name': name, 'key': prefix + name, 'status': 'failed', 'reason': type(e).__name__ + ': ' + str(e)}

def emit(rec):
    with out_lock:
        sys.stdout.write(json.dumps(rec, separators=(',', ':')) + '\n')

with ThreadPoolExecutor(max_workers=concurrency) as pool:
    pending = set()
    for name in names():
        if len(pending) >= concurrency * 4:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                emit(fut.result())
        pending.add(pool.submit(archive_safely, name))
    for fut in pending:
        emit(fut.result())
sys.stdout.flush()
with open(stats_file, 'w') as f:
    json.dump({'maxRssKiB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
PY

# Uploads (or, in DryRun, looks up) every selected file in one helper process; JSON lines to $tmp/results.
upload_batch() {
  local mode=upload
  [[ $dry_run == true ]] && mode=dry-run
  log "batch mode: one ${aws_python[0]} process with $concurrency worker(s)"
  PYTHONDONTWRITEBYTECODE=1 "${aws_python[@]}" -c "$UPLOADER_PY" "$mode" "$wal_dir" "$wal_dev" "$bucket" \
    "$prefix" "$concurrency" "$endpoint" "$tmp/selected" "$tmp/helper-stats.json" >"$tmp/results" ||
    die "the batch upload helper failed (see the error above)"
}

# Per-file fallback (run by xargs in a child bash): prints one JSON line for the file named $1.
upload_one() {
  local name=$1 path key size mtime dev sha_hex sha_b64 err head status reason=''
  local -a endpoint_args=()
  [[ -n $ARCHIVE_ENDPOINT ]] && endpoint_args=(--endpoint-url "$ARCHIVE_ENDPOINT")
  path=$ARCHIVE_WAL_DIR/$name
  key=$ARCHIVE_PREFIX$name
  if [[ -L $path || ! -f $path ]] || ! read -r size mtime dev < <(stat -c '%s %.9Y %d' -- "$path") ||
    [[ $dev != "$ARCHIVE_WAL_DEV" ]]; then
    jq -cn --arg name "$name" --arg key "$key" \
      '{name: $name, key: $key, status: "failed", reason: "not a regular file on the WAL filesystem"}'
    return
  fi
  sha_hex=$(sha256sum <"$path")
  sha_hex=${sha_hex:0:64}
  sha_b64=$(hex_to_base64 "$sha_hex")
  if [[ $ARCHIVE_MODE == dry-run ]]; then
    status=would-upload
  elif err=$(aws "${endpoint_args[@]}" s3api put-object --bucket "$ARCHIVE_BUCKET" --key "$key" --body "$path" \
    --checksum-algorithm SHA256 --checksum-sha256 "$sha_b64" --if-none-match '*' 2>&1 >/dev/null); then
    status=uploaded
  elif [[ $err == *PreconditionFailed* || $err == *'(412)'* ]]; then
    status=exists
  else
    status=failed reason=$(tail -n 1 <<<"$err")
  fi
  if [[ $status == exists || $ARCHIVE_MODE == dry-run ]]; then
    if head=$(aws "${endpoint_args[@]}" s3api head-object --bucket "$ARCHIVE_BUCKET" --key "$key" \
      --checksum-mode ENABLED --output json 2>&1); then
      if jq -e --arg sha "$sha_b64" --argjson size "$size" \
        '.ChecksumSHA256 == $sha and .ContentLength == $size' <<<"$head" >/dev/null; then
        status=already-archived
      else
        status=conflict reason='the existing object has a different or no SHA-256, or another size'
      fi
    elif [[ $status == exists || $head != *'(404)'* ]]; then
      status=failed reason=$(tail -n 1 <<<"$head")
    fi
  fi
  if [[ $(stat -c '%s %.9Y' -- "$path" 2>/dev/null) != "$size $mtime" ]]; then
    status=failed reason='changed during upload'
  fi
  jq -cn --arg name "$name" --arg key "$key" --argjson size "$size" --arg sha256 "$sha_hex" \
    --arg status "$status" --arg reason "$reason" \
    '{name: $name, key: $key, size: $size, sha256: $sha256, status: $status}
     + (if $reason == "" then {} else {reason: $reason} end)'
}

# Fallback when `aws` is not a Python program: one CLI process per file, Concurrency at a time.
upload_per_file() {
  log "per-file mode: aws is not a Python program; one aws process per file, $concurrency at a time (slow for many files)"
  export ARCHIVE_WAL_DIR=$wal_dir ARCHIVE_WAL_DEV=$wal_dev ARCHIVE_BUCKET=$bucket ARCHIVE_PREFIX=$prefix
  export ARCHIVE_ENDPOINT=$endpoint ARCHIVE_MODE=upload
  [[ $dry_run == true ]] && ARCHIVE_MODE=dry-run
  export -f upload_one hex_to_base64
  # Each child prints one short line (< PIPE_BUF), so lines from parallel children never interleave.
  # shellcheck disable=SC2016 # $1 is expanded by the child bash
  xargs -0 -r -P "$concurrency" -n 1 bash -c 'upload_one "$1"' _ <"$tmp/selected" | cat >"$tmp/results"
  printf '{}' >"$tmp/helper-stats.json"
}

# Builds the manifest from the results and writes it to S3 (plain PUT with a SHA-256 checksum).
write_manifest() {
  local sha_hex sha_b64
  local -a endpoint_args=()
  [[ -n $endpoint ]] && endpoint_args=(--endpoint-url "$endpoint")
  jq -sc --arg runId "$run_id" --arg node "$node" --arg bucket "$bucket" --arg prefix "$prefix" \
    --arg walDir "$wal_dir" --arg createdAt "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg host "$(hostname)" \
    '{kind: "stemedb-wal-archive-manifest", version: 1, runId: $runId, node: $node, bucket: $bucket,
      prefix: $prefix, walDir: $walDir, host: $host, createdAt: $createdAt,
      entries: map({key, size, sha256, status} + (if .reason then {reason} else {} end))}' \
    "$tmp/results" >"$tmp/manifest.json"
  sha_hex=$(sha256sum <"$tmp/manifest.json")
  sha_b64=$(hex_to_base64 "${sha_hex:0:64}")
  aws "${endpoint_args[@]}" s3api put-object --bucket "$bucket" --key "$prefix$MANIFEST_NAME" \
    --body "$tmp/manifest.json" --content-type application/json --checksum-algorithm SHA256 \
    --checksum-sha256 "$sha_b64" >/dev/null ||
    die "could not write the manifest s3://$bucket/$prefix$MANIFEST_NAME: nothing may be deleted for this run"
  log "manifest written to s3://$bucket/$prefix$MANIFEST_NAME"
}

# Prints the one-line JSON summary.
print_summary() {
  local mode=$1 started_ns=$2 manifest_key=''
  [[ $dry_run == false ]] && manifest_key=$prefix$MANIFEST_NAME
  jq -sc --argjson dryRun "$dry_run" --arg mode "$mode" --arg walDir "$wal_dir" --arg bucket "$bucket" \
    --arg prefix "$prefix" --arg runId "$run_id" --arg manifestKey "$manifest_key" \
    --argjson max "$MAX_LISTED" --argjson seconds "$((($(date +%s%N) - started_ns) / 1000000))e-3" \
    --argjson helper "$(cat "$tmp/helper-stats.json")" \
    --argjson skipped "{\"newest\":$skipped_newest,\"open\":$skipped_open,\"tooRecent\":$skipped_recent,\"symlinks\":$skipped_symlinks,\"otherFilesystem\":$skipped_other_fs,\"notRegular\":$skipped_not_regular,\"controlCharacterInName\":$skipped_unsafe_name,\"nameNotUtf8\":$skipped_not_utf8}" \
    --rawfile unsafe "$tmp/unsafe" \
    'def count(s): map(select(.status == s)) | length;
     def listed(s): map(select(.status == s) | {name, reason}) | .[:$max];
     (map(select(.status == "uploaded") | .size) | add // 0) as $bytes
     | {status: (if $dryRun then "dry-run" elif count("failed") > 0 then "partial" else "ok" end),
        dryRun: $dryRun, mode: $mode, walDir: $walDir, bucket: $bucket, prefix: $prefix, runId: $runId,
        manifestKey: $manifestKey, selected: length, uploaded: count("uploaded"),
        alreadyArchived: count("already-archived"), wouldUpload: count("would-upload"),
        conflicts: count("conflict"), failed: count("failed"), bytesUploaded: $bytes,
        bytesSelected: (map(.size // 0) | add // 0), skipped: $skipped,
        firstConflicts: listed("conflict"), firstFailures: listed("failed"),
        firstUnsafeNames: ($unsafe | split("\n") | map(select(length > 0) | split("\t") | {name: .[0], reason: .[1]})),
        durationSeconds: $seconds, filesPerSecond: (if $seconds > 0 then (length / $seconds | floor) else null end),
        mibPerSecond: (if $seconds > 0 then ($bytes / 1048576 / $seconds * 10 | floor / 10) else null end)}
       + (if $helper.maxRssKiB then {helperMaxRssKiB: $helper.maxRssKiB} else {} end)' \
    "$tmp/results"
}

main() {
  local started_ns mode
  local -a aws_python=()
  started_ns=$(date +%s%N)
  read_parameters
  resolve_wal_dir
  make_tmp_dir
  check_tools
  # In batch mode the helper checks botocore's PutObject model itself (the same model the CLI uses).
  if mapfile -t aws_python < <(find_aws_python) && ((${#aws_python[@]} > 0)); then
    mode='batch'
  else
    mode='per-file-cli'
    check_cli_flags
  fi
  run_id=$(cat /proc/sys/kernel/random/uuid)
  select_segments
  if [[ $mode == batch ]]; then upload_batch; else upload_per_file; fi
  if [[ $dry_run == true ]]; then
    log "DryRun: nothing uploaded, no manifest written"
  else
    write_manifest
  fi
  print_summary "$mode" "$started_ns"
}

main "$@"
