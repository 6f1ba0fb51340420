# shellcheck shell=bash disable=SC2034 # the variables set here are the including script's (read there)
# lib/wal-archive.sh: the WAL directory and archive location that the two host phases of WAL
# archival share (archive-wal.sh uploads, delete-archived-wal.sh deletes what was verified).
#
# Included like lib/common.sh (one `source` line with the inline marker, after lib/common.sh,
# whose `die` it uses). It only defines functions; they set the including script's globals
#   wal_dir, bucket, prefix, dry_run, endpoint   (read_archive_location)
#   wal_dir (resolved), wal_dev                  (resolve_wal_dir)
#   tmp, TMPDIR, and an EXIT trap removing tmp   (make_tmp_dir)

# Reads and checks the SSM_ values both phases take: WalDir, Bucket, Prefix, DryRun, EndpointUrl.
# The Command documents' allowedPatterns check them first; these are the same patterns, checked
# again so the scripts are safe to run by hand. A bad value ends the run naming it.
read_archive_location() {
  local re_path='^(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,254})+/?$'
  local re_bucket='^[a-z0-9][a-z0-9-]{0,61}[a-z0-9](\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
  local re_prefix='^([A-Za-z0-9_-][A-Za-z0-9._-]{0,127}/){1,8}$'
  local re_endpoint='^(https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/?)?$'
  wal_dir=${SSM_WalDir:-}
  bucket=${SSM_Bucket:-}
  prefix=${SSM_Prefix:-}
  dry_run=${SSM_DryRun:-}
  endpoint=${SSM_EndpointUrl:-}
  [[ $wal_dir =~ $re_path ]] || die "WalDir must be an absolute path of [A-Za-z0-9._-] parts, got '$wal_dir'"
  [[ $bucket =~ $re_bucket && ${#bucket} -ge 3 && ${#bucket} -le 63 ]] || die "Bucket is not a valid bucket name: '$bucket'"
  [[ $prefix =~ $re_prefix ]] || die "Prefix must be like wal/<node>/ (parts of [A-Za-z0-9._-], ending in /), got '$prefix'"
  [[ $dry_run == true || $dry_run == false ]] || die "DryRun must be true or false, got '$dry_run'"
  [[ $endpoint =~ $re_endpoint ]] || die "EndpointUrl must be empty or http(s)://host[:port], got '$endpoint'"
}

# Resolves WalDir (it may be reached through a symlink the operator configured) and records its device.
resolve_wal_dir() {
  [[ -d $wal_dir ]] || die "WalDir $wal_dir is not a directory"
  wal_dir=$(realpath -e -- "$wal_dir") || die "cannot resolve WalDir $wal_dir"
  wal_dev=$(stat -c %d -- "$wal_dir")
}

# A temp directory that is not on the WAL filesystem (which may be 100% full): tmpfs preferred.
# It becomes TMPDIR, and is removed when the script exits.
make_tmp_dir() {
  local base
  for base in /dev/shm /run "${TMPDIR:-/tmp}"; do
    [[ -d $base && -w $base ]] || continue
    if [[ $(stat -f -c %T -- "$base") == tmpfs || $(stat -c %d -- "$base") != "$wal_dev" ]]; then
      if tmp=$(mktemp -d -p "$base" "stemedb-$SCRIPT_NAME.XXXXXX" 2>/dev/null); then
        export TMPDIR=$tmp
        trap 'rm -rf -- "$tmp"' EXIT
        return
      fi
    fi
  done
  die "no writable temp directory off the WAL filesystem (tried /dev/shm, /run, \$TMPDIR)"
}
