import {
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  type EC2Client,
  type Volume,
  type VolumeModification,
} from '@aws-sdk/client-ec2';
import { allPages } from './pages';
import { type RetryOptions, unlessAwsError, withThrottlingRetry } from './retry';

/**
 * Shared EC2 reads for the volume Lambdas: find a node's managed data volume, check that a volume
 * is managed and attached to an instance, read its latest modification. Every request goes through
 * {@link Ec2Calls}, which counts it and retries throttling (bounded, with jitter).
 */

/** Counts every AWS request (retries included) and retries throttling with {@link withThrottlingRetry}. */
export class Ec2Calls {
  #count = 0;

  constructor(
    readonly client: EC2Client,
    private readonly retry: RetryOptions = {},
  ) {}

  /** AWS requests sent so far, throttled attempts included. */
  get count(): number {
    return this.#count;
  }

  /** Runs one AWS request (`send` is called once per attempt). */
  async call<T>(send: (client: EC2Client) => Promise<T>): Promise<T> {
    return await withThrottlingRetry(() => {
      this.#count++;
      return send(this.client);
    }, this.retry);
  }
}

/** A volume's tags as a plain object. */
export function tagsOf(volume: Volume): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of volume.Tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

/** Describes one volume; undefined when it does not exist. */
export function describeVolume(api: Ec2Calls, volumeId: string): Promise<Volume | undefined> {
  return unlessAwsError('InvalidVolume.NotFound', undefined, async () => {
    const out = await api.call((c) => c.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] })));
    return out.Volumes?.find((v) => v.VolumeId === volumeId);
  });
}

/** The volumes attached to an instance that carry `<managedTagKey>=true` (attachment not yet checked). */
export function findManagedVolumes(
  api: Ec2Calls,
  instanceId: string,
  managedTagKey: string,
): Promise<Volume[]> {
  return allPages(async (token) => {
    const out = await api.call((c) =>
      c.send(
        new DescribeVolumesCommand({
          Filters: [
            { Name: 'attachment.instance-id', Values: [instanceId] },
            { Name: `tag:${managedTagKey}`, Values: ['true'] },
          ],
          NextToken: token,
        }),
      ),
    );
    return { items: out.Volumes, next: out.NextToken };
  });
}

/**
 * Why `volume` may not be expanded for `instanceId`, or undefined when it may: it must carry
 * `<managedTagKey>=true` and be attached (state `attached`) to that instance.
 */
export function managedAttachmentProblem(
  volume: Volume,
  instanceId: string,
  managedTagKey: string,
): string | undefined {
  const id = volume.VolumeId ?? '(unknown volume)';
  const tag = tagsOf(volume)[managedTagKey];
  if (tag !== 'true') {
    return tag === undefined
      ? `volume ${id} is not tagged ${managedTagKey}=true: only managed volumes are expanded`
      : `volume ${id} has ${managedTagKey}=${JSON.stringify(tag)}, not "true": only managed volumes are expanded`;
  }
  const attachments = volume.Attachments ?? [];
  const mine = attachments.find((a) => a.InstanceId === instanceId);
  if (mine === undefined) {
    const others = attachments.map((a) => a.InstanceId).filter((x) => x !== undefined);
    return others.length > 0
      ? `volume ${id} is attached to ${others.join(', ')}, not to ${instanceId}`
      : `volume ${id} is not attached to any instance (expected ${instanceId})`;
  }
  if (mine.State !== 'attached') {
    return `volume ${id} is ${mine.State ?? 'in an unknown state'} on ${instanceId}, not attached`;
  }
  return undefined;
}

/**
 * The volume's modifications (AWS returns the most recent one; moto returns the whole history).
 * A volume never modified makes AWS answer `InvalidVolumeModification.NotFound`: that is an empty list.
 */
export function describeModifications(api: Ec2Calls, volumeId: string): Promise<VolumeModification[]> {
  return unlessAwsError('InvalidVolumeModification.NotFound', [], async () => {
    const out = await api.call((c) =>
      c.send(new DescribeVolumesModificationsCommand({ VolumeIds: [volumeId] })),
    );
    return (out.VolumesModifications ?? []).filter(
      (m) => m.VolumeId === undefined || m.VolumeId === volumeId,
    );
  });
}

/** The most recent modification (latest StartTime; on a tie, the later in the list). */
export function latestModification(mods: readonly VolumeModification[]): VolumeModification | undefined {
  let latest: VolumeModification | undefined;
  for (const m of mods) {
    if (latest === undefined || (m.StartTime?.getTime() ?? 0) >= (latest.StartTime?.getTime() ?? 0))
      latest = m;
  }
  return latest;
}

/** True while a modification is under way (a new one is refused until it is `completed`). */
export function isInFlight(mod: VolumeModification | undefined): boolean {
  return mod?.ModificationState === 'modifying' || mod?.ModificationState === 'optimizing';
}
