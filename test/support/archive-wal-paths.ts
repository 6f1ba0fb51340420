/**
 * The step paths of the StemeDB-ArchiveWal Automation, in order: what the simulator
 * (archive-wal.automation.test.ts) and the local Automation runner (automation-runner.test.ts)
 * must both walk for the same outcome of VerifyArchive, so the two are held to one path.
 */
export const ARCHIVE_WAL_PATHS = {
  /** Every segment verified: upload, verify, delete, disk report and notification. */
  verified: [
    'ResolveNode',
    'UploadWal',
    'VerifyArchive',
    'BranchOnVerify',
    'DeleteArchivedWal',
    'DiskReport',
    'Notify',
  ],
  /** Verification refused: nothing deleted, the refusal notified, the execution ended Failed. */
  refused: ['ResolveNode', 'UploadWal', 'VerifyArchive', 'BranchOnVerify', 'NotifyRefused', 'FailRefused'],
} as const satisfies Record<string, readonly string[]>;
