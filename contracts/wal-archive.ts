/**
 * The WAL archive's manifest names (runbook §5C), under a node's prefix `wal/<node>/`: the upload
 * phase on the host writes the upload manifest, verify-archive the verified one. The bucket policy
 * (lib/wal-archive-bucket.ts) lets only these two keys be written again; every other key is
 * create-only.
 */

/** Under the prefix: `wal/<node>/_manifest/upload.json`. */
export const UPLOAD_MANIFEST_NAME = '_manifest/upload.json';

/** Under the prefix: `wal/<node>/_manifest/verified.json`. */
export const VERIFIED_MANIFEST_NAME = '_manifest/verified.json';
