import { DeleteSnapshotCommand, DescribeSnapshotsCommand, type Snapshot } from '@aws-sdk/client-ec2';
import { PRE_EXPANSION_PURPOSE, SNAPSHOT_PURPOSE_TAG_KEY } from '../../contracts/expansion';
import type { Ec2Calls } from './ec2-volume';
import { allPages } from './pages';
import { errorCode, isThrottling } from './retry';

/**
 * Retention of the snapshots expand-volume takes before it grows a volume (runbook §5A; before
 * this they were kept forever). Applied by expand-volume right after it took a new one:
 *
 * - only snapshots of the same volume, owned by this account, carrying this deployment's tags
 *   (`<managed>=true`, `<deployment>=<prefix>`) and the pre-expansion purpose tag
 *   (`stemedb:reason=expand-volume`): the DLM daily snapshots (`stemedb:snapshot=daily`, no
 *   purpose tag) and anyone else's are never candidates, and IAM denies deleting them anyway;
 * - never the snapshot just taken, and never one that is not `completed`: a `pending` one may be
 *   another run's, still being written, and the one just taken is pending too, so the finished
 *   ones are what protects the volume until it completes; an `error` one is left for a human to
 *   see (it holds no data and costs nothing);
 * - of the completed ones, the newest `keep` (by StartTime) are kept; an older one is deleted,
 *   once it is at least `deleteAfterDays` days old when that is above 0;
 * - at most {@link MAX_DELETIONS_PER_RUN} deletions a run (the rest go at the next expansion).
 *
 * Nothing here fails the expansion: the volume is already growing. A snapshot used by an AMI
 * (`InvalidSnapshot.InUse`) or already gone is skipped, any other refusal is reported and the
 * next one tried, throttling past the retries stops the deletions for this run; every problem is
 * returned as a line for the result and the log.
 */

export const PURPOSE_TAG_KEY = SNAPSHOT_PURPOSE_TAG_KEY;
export const PURPOSE_TAG_VALUE = PRE_EXPANSION_PURPOSE;
export const MAX_DELETIONS_PER_RUN = 20;
const DAY_MS = 86_400_000;

export interface SnapshotRetentionPolicy {
  /** Completed pre-expansion snapshots kept per volume, besides the one just taken (1..1000). */
  readonly keep: number;
  /** An older one is deleted only once at least this many days old (0: at once). */
  readonly deleteAfterDays: number;
}

export interface RetentionTags {
  readonly managedTagKey: string;
  readonly deploymentTagKey: string;
  readonly deployment: string;
}

export interface RetentionOutcome {
  /** Snapshots deleted by this run. */
  readonly deleted: readonly string[];
  /** What could not be done, one line each ('' never). */
  readonly problems: readonly string[];
}

function tagValue(s: Snapshot, key: string): string | undefined {
  return s.Tags?.find((t) => t.Key === key)?.Value;
}

/** Whether a snapshot is one of this deployment's pre-expansion snapshots of `volumeId`. */
export function isPreExpansionSnapshot(s: Snapshot, volumeId: string, tags: RetentionTags): boolean {
  return (
    s.VolumeId === volumeId &&
    tagValue(s, tags.managedTagKey) === 'true' &&
    tagValue(s, tags.deploymentTagKey) === tags.deployment &&
    tagValue(s, PURPOSE_TAG_KEY) === PURPOSE_TAG_VALUE
  );
}

/**
 * Which of a volume's pre-expansion snapshots to delete, oldest first. Pure: `snapshots` are the
 * candidates already filtered to this volume and deployment.
 */
export function snapshotsToDelete(
  snapshots: readonly Snapshot[],
  policy: SnapshotRetentionPolicy,
  justTaken: string,
  now: Date,
): Snapshot[] {
  const completed = snapshots
    .filter((s) => s.State === 'completed' && s.SnapshotId !== undefined && s.SnapshotId !== justTaken)
    .sort(
      (a, b) =>
        (b.StartTime?.getTime() ?? 0) - (a.StartTime?.getTime() ?? 0) ||
        String(b.SnapshotId).localeCompare(String(a.SnapshotId)),
    );
  const minAgeMs = policy.deleteAfterDays * DAY_MS;
  return completed
    .slice(policy.keep)
    .filter((s) => minAgeMs === 0 || now.getTime() - (s.StartTime?.getTime() ?? now.getTime()) >= minAgeMs)
    .reverse();
}

/** Every pre-expansion snapshot of the volume (all pages), filtered by EC2 and checked again here. */
export async function listPreExpansionSnapshots(
  api: Ec2Calls,
  volumeId: string,
  tags: RetentionTags,
): Promise<Snapshot[]> {
  const snapshots = await allPages(async (token) => {
    const page = await api.call((c) =>
      c.send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [
            { Name: 'volume-id', Values: [volumeId] },
            { Name: `tag:${tags.managedTagKey}`, Values: ['true'] },
            { Name: `tag:${tags.deploymentTagKey}`, Values: [tags.deployment] },
            { Name: `tag:${PURPOSE_TAG_KEY}`, Values: [PURPOSE_TAG_VALUE] },
          ],
          MaxResults: 100,
          NextToken: token,
        }),
      ),
    );
    return { items: page?.Snapshots, next: page?.NextToken };
  });
  return snapshots.filter((s) => isPreExpansionSnapshot(s, volumeId, tags));
}

/** Applies the retention to `volumeId` after `justTaken` was created. Never throws. */
export async function applySnapshotRetention(
  api: Ec2Calls,
  volumeId: string,
  justTaken: string,
  policy: SnapshotRetentionPolicy,
  tags: RetentionTags,
  now: Date,
): Promise<RetentionOutcome> {
  const deleted: string[] = [];
  const problems: string[] = [];
  let doomed: Snapshot[];
  try {
    doomed = snapshotsToDelete(await listPreExpansionSnapshots(api, volumeId, tags), policy, justTaken, now);
  } catch (err) {
    return {
      deleted,
      problems: [`could not list the pre-expansion snapshots of ${volumeId}: ${describe(err)}`],
    };
  }
  if (doomed.length > MAX_DELETIONS_PER_RUN) {
    problems.push(
      `${doomed.length} pre-expansion snapshots of ${volumeId} are past retention; deleting the ${MAX_DELETIONS_PER_RUN} oldest now, the rest at the next expansion`,
    );
    doomed = doomed.slice(0, MAX_DELETIONS_PER_RUN);
  }
  for (const snapshot of doomed) {
    const id = snapshot.SnapshotId as string;
    try {
      await api.call((c) => c.send(new DeleteSnapshotCommand({ SnapshotId: id })));
      deleted.push(id);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'InvalidSnapshot.NotFound') continue; // already gone: nothing to do
      if (code === 'InvalidSnapshot.InUse') {
        problems.push(`kept ${id}: it is in use (by an AMI); deregister the image to let it go`);
        continue;
      }
      problems.push(`could not delete ${id}: ${describe(err)}`);
      if (isThrottling(err)) {
        problems.push('stopped deleting for this run (throttled); the rest go at the next expansion');
        break;
      }
    }
  }
  return { deleted, problems };
}

function describe(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code !== undefined && !message.startsWith(code) ? `${code}: ${message}` : message;
}
