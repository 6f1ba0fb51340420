/**
 * expand-volume: grows a node's managed EBS data volume online (runbook §5A). Called by the
 * `<Prefix>-ExpandVolume` Automation document (aws:invokeLambdaFunction), which branches on `status`.
 *
 * Input (Automation passes strings; both forms accepted; '' means "not given" for the optional
 * volumeId, reason, usedBytes and filesystemBytes; any other key is rejected):
 *   { instanceId, volumeId?, reason?, dryRun?: boolean|'true'|'false', usedBytes?, filesystemBytes? }
 *   usedBytes = filesystem size − available bytes (what the alarms see), filesystemBytes = its size.
 * Output (every key always present; '' / 0 / [] when not applicable, so Automation selectors resolve):
 *   { status, volumeId, instanceId, node, currentSizeGiB, targetSizeGiB, volumeType, snapshotId,
 *     modificationState, reason, retryAfter (ISO time or ''), capStatus, capWarning,
 *     snapshotsDeleted, snapshotRetentionProblems, apiCalls }
 *   capStatus / capWarning: for started / reused / dry-run, `near-cap` when targetSizeGiB is within
 *     WARN_WITHIN_PERCENT of the cap, `at-cap` at it (the next expansion will be refused), with a
 *     sentence saying so; `clear` and '' otherwise, `unchecked` for the other statuses. The
 *     ExpandVolume Automation notifies the warning before it goes on (NotifyCapWarning);
 *   snapshotsDeleted / snapshotRetentionProblems: after a new snapshot, the retention applied to
 *     the volume's older pre-expansion snapshots (never fatal: problems are reported, not thrown).
 *   status: started   ModifyVolume accepted (snapshot taken first unless disabled)
 *           reused    a modification already under way (or done, not yet grown into) reaches the size
 *           refused   policy: not managed, not of this deployment, not a registered node's instance
 *                     and volume, not attached, not exactly one managed volume, at the cap
 *           deferred  AWS will not take a modification now; retryAfter says when to ask again
 *           dry-run   would start a modification; nothing was changed
 *           invalid   bad input; no AWS call was made
 *   In a dry run, reused / deferred / refused are returned as they would be (they change nothing).
 *
 * Environment (validated at cold start; a bad value fails the init with a message naming it):
 *   GROW_PERCENT            grow by at least this % of the size (whole number 1..1000, default 50)
 *   MIN_GROW_GIB            grow by at least this many GiB (1..65536, default 10)
 *   MAX_SIZE_GIB            cost guard, never beyond this size (1..65536, default 4096)
 *   SNAPSHOT_BEFORE_EXPAND  'true' | 'false' (default true): snapshot first, never waited for
 *   WARNING_FREE_PERCENT    the warning alarm's free-space % (above 0, below 100, default 20)
 *   SNAPSHOTS_KEPT          completed pre-expansion snapshots kept per volume besides the new one
 *                           (1..1000, default 3; lambda/shared/snapshot-retention.ts)
 *   SNAPSHOTS_DELETE_AFTER_DAYS  an older one is deleted once this old (0..3650, default 0: at once)
 *   WARN_WITHIN_PERCENT     early warning when the size after an expansion is within this % of the
 *                           cap (0..100, default 25; capWarning in lambda/shared/sizing-policy.ts)
 *   MANAGED_TAG_KEY         tag that marks managed volumes, value 'true' (default stemedb:managed)
 *   NODE_TAG_KEY            tag naming the node (default stemedb:node)
 *   DEPLOYMENT_TAG_KEY      tag naming the deployment (default stemedb:deployment)
 *   DEPLOYMENT              this deployment's prefix, the deployment tag's value (default StemeDB)
 *   NODE_PARAMETER_PREFIX   node registry prefix (default /<DEPLOYMENT>/nodes/)
 *
 * Whose volume (before any decision; every miss is `refused`, nothing is changed): the volume must
 * carry `<MANAGED_TAG_KEY>=true` and `<DEPLOYMENT_TAG_KEY>=<DEPLOYMENT>` (the managed tag is the
 * same in every deployment of the account), and its node (the volume's node tag) must be in this
 * deployment's registry (`<NODE_PARAMETER_PREFIX><node>`) with this instance and this volume.
 *
 * Decisions on the latest modification (DescribeVolumesModifications is read before anything else):
 *   modifying/optimizing, target ≥ wanted   → reused (wanted is sized from its OriginalSize, so the
 *                                             same request sent twice gives the same answer)
 *   modifying/optimizing, target < wanted   → deferred (AWS needs the previous one `completed`)
 *   completed, volume larger than the filesystem reported (growth not yet used) → reused, no new growth
 *   failed                                  → a new modification is tried once (AWS: "retry the
 *                                             modification"); if AWS refuses it, deferred
 *   VolumeModificationRateExceeded on ModifyVolume → deferred, no second ModifyVolume
 *   IncorrectModificationState on ModifyVolume → the modifications are read once more: a concurrent
 *                                             one that is large enough is reused, otherwise deferred
 * retryAfter is a conservative hint: 6 hours after the start of the modification in the way (AWS's
 * older documented wait; the newer rule, 4 per rolling 24 h once the previous one is `completed`,
 * can allow earlier), and at least 15 minutes from now.
 */

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  CreateSnapshotCommand,
  EC2Client,
  ModifyVolumeCommand,
  type Volume,
  type VolumeModification,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { INSTANCE_ID_PATTERN, VOLUME_ID_PATTERN } from '../contracts/aws-ids';
import { DEFAULT_PREFIX, NODE_NAME_PATTERN, PREFIX_PATTERN } from '../contracts/deployment';
import { DEFAULT_EXPANSION } from '../contracts/expansion';
import { NODE_REGISTRY_PREFIX_PATTERN, nodeRegistryParameterPrefix } from '../contracts/node-registry';
import { RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import { parseNodeRegistryEntry } from './shared/alarm-event';
import {
  describeModifications,
  describeVolume,
  Ec2Calls,
  findManagedVolumes,
  isInFlight,
  latestModification,
  managedAttachmentProblem,
  tagsOf,
} from './shared/ec2-volume';
import { type ParsedPayload, parsePayload, shown } from './shared/payload';
import { instrumentedInvocation, logger, metrics } from './shared/powertools';
import { errorCode, type RetryOptions, unlessAwsError, withThrottlingRetry } from './shared/retry';
import {
  type CapStatus,
  capWarning,
  decideTargetSize,
  GIB,
  type SizingDecision,
  type SizingPolicy,
} from './shared/sizing-policy';
import { applySnapshotRetention, PURPOSE_TAG_KEY, PURPOSE_TAG_VALUE } from './shared/snapshot-retention';

// ---------------------------------------------------------------------------------------------
// Configuration

export interface ExpandConfig extends SizingPolicy {
  readonly snapshotBeforeExpand: boolean;
  /** Completed pre-expansion snapshots kept per volume besides the one just taken. */
  readonly snapshotsKept: number;
  /** An older pre-expansion snapshot is deleted once this many days old (0: at once). */
  readonly snapshotsDeleteAfterDays: number;
  /** The early warning's margin: % of the cap. */
  readonly warnWithinPercent: number;
  readonly managedTagKey: string;
  readonly nodeTagKey: string;
  readonly deploymentTagKey: string;
  /** This deployment's prefix: the deployment tag's value. */
  readonly deployment: string;
  /** Where this deployment's node registry lives: `<prefix><node>`. */
  readonly nodeParameterPrefix: string;
}

const TAG_KEY_PATTERN = /^(?!aws:)[A-Za-z0-9 _.:/=+@-]{1,128}$/;

/** Reads and validates the environment. Throws one Error listing every bad variable. */
export function loadExpandConfig(env: NodeJS.ProcessEnv): ExpandConfig {
  const problems: string[] = [];
  const read = <T>(name: string, fallback: T, parse: (v: string) => T | undefined, accepted: string): T => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const v = parse(raw);
    if (v === undefined) {
      problems.push(`${name} is ${JSON.stringify(raw)}; expected ${accepted}`);
      return fallback;
    }
    return v;
  };
  const int = (min: number, max: number) => (v: string) => {
    if (!/^\d{1,6}$/.test(v)) return undefined;
    const n = Number(v);
    return n >= min && n <= max ? n : undefined;
  };
  const d = DEFAULT_EXPANSION;
  const deployment = read(
    'DEPLOYMENT',
    DEFAULT_PREFIX,
    (v) => (PREFIX_PATTERN.test(v) ? v : undefined),
    'a prefix: a letter and up to 19 letters and digits',
  );
  const config: ExpandConfig = {
    growPercent: read('GROW_PERCENT', d.growPercent, int(1, 1000), 'a whole number from 1 to 1000'),
    minGrowGiB: read('MIN_GROW_GIB', d.minGrowGiB, int(1, 65_536), 'a whole number of GiB from 1 to 65536'),
    maxSizeGiB: read('MAX_SIZE_GIB', d.maxSizeGiB, int(1, 65_536), 'a whole number of GiB from 1 to 65536'),
    snapshotBeforeExpand: read(
      'SNAPSHOT_BEFORE_EXPAND',
      d.snapshotBeforeExpand,
      (v) => (v === 'true' ? true : v === 'false' ? false : undefined),
      'true or false',
    ),
    snapshotsKept: read('SNAPSHOTS_KEPT', d.snapshotsKept, int(1, 1000), 'a whole number from 1 to 1000'),
    snapshotsDeleteAfterDays: read(
      'SNAPSHOTS_DELETE_AFTER_DAYS',
      d.snapshotsDeleteAfterDays,
      int(0, 3650),
      'a whole number of days from 0 to 3650',
    ),
    warnWithinPercent: read(
      'WARN_WITHIN_PERCENT',
      d.warnWithinPercent,
      int(0, 100),
      'a whole number from 0 to 100',
    ),
    warningFreePercent: read(
      'WARNING_FREE_PERCENT',
      RUNBOOK_THRESHOLDS.warningFreePercent,
      (v) => {
        if (!/^\d{1,2}(?:\.\d{1,3})?$/.test(v)) return undefined;
        const n = Number(v);
        return n > 0 && n < 100 ? n : undefined;
      },
      'a number above 0 and below 100, such as 20',
    ),
    managedTagKey: read(
      'MANAGED_TAG_KEY',
      'stemedb:managed',
      (v) => (TAG_KEY_PATTERN.test(v) ? v : undefined),
      'a tag key of 1-128 letters, digits, spaces and _.:/=+-@, not starting with "aws:"',
    ),
    nodeTagKey: read(
      'NODE_TAG_KEY',
      'stemedb:node',
      (v) => (TAG_KEY_PATTERN.test(v) ? v : undefined),
      'a tag key of 1-128 letters, digits, spaces and _.:/=+-@, not starting with "aws:"',
    ),
    deploymentTagKey: read(
      'DEPLOYMENT_TAG_KEY',
      'stemedb:deployment',
      (v) => (TAG_KEY_PATTERN.test(v) ? v : undefined),
      'a tag key of 1-128 letters, digits, spaces and _.:/=+-@, not starting with "aws:"',
    ),
    deployment,
    nodeParameterPrefix: read(
      'NODE_PARAMETER_PREFIX',
      nodeRegistryParameterPrefix(deployment),
      (v) => (NODE_REGISTRY_PREFIX_PATTERN.test(v) ? v : undefined),
      'a parameter path /<path>/',
    ),
  };
  if (problems.length > 0) {
    throw new Error(`expand-volume configuration is invalid:\n  - ${problems.join('\n  - ')}`);
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Input

export interface ExpandRequest {
  readonly instanceId: string;
  readonly volumeId?: string | undefined;
  readonly reason: string;
  readonly dryRun: boolean;
  readonly usedBytes?: number | undefined;
  readonly filesystemBytes?: number | undefined;
}

const INPUT_KEYS = new Set(['instanceId', 'volumeId', 'reason', 'dryRun', 'usedBytes', 'filesystemBytes']);
const REASON_PATTERN = /^[A-Za-z0-9 ._:,/()=+@#-]{0,256}$/;
const BYTES_PATTERN = /^(?:0|[1-9]\d{0,15})$/;

function parseBytes(name: string, v: unknown): { value?: number; problem?: string } {
  if (v === undefined || v === '') return {};
  const n =
    typeof v === 'string' && BYTES_PATTERN.test(v) ? Number(v) : typeof v === 'number' ? v : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) {
    return { problem: `${name} is ${shown(v)}; expected a whole number of bytes (digits only)` };
  }
  return { value: n };
}

/** Validates the payload; returns the request or the reason naming the first bad field. */
export function parseExpandInput(event: unknown): ParsedPayload<ExpandRequest> {
  return parsePayload(event, INPUT_KEYS, (e) => {
    if (typeof e.instanceId !== 'string' || !INSTANCE_ID_PATTERN.test(e.instanceId)) {
      return {
        ok: false,
        reason: `instanceId is ${shown(e.instanceId)}; expected i- and 8 or 17 hex digits`,
      };
    }
    let volumeId: string | undefined;
    if (e.volumeId !== undefined && e.volumeId !== '') {
      if (typeof e.volumeId !== 'string' || !VOLUME_ID_PATTERN.test(e.volumeId)) {
        return {
          ok: false,
          reason: `volumeId is ${shown(e.volumeId)}; expected vol- and 8 or 17 hex digits, or ''`,
        };
      }
      volumeId = e.volumeId;
    }
    const reason = e.reason ?? '';
    if (typeof reason !== 'string' || !REASON_PATTERN.test(reason)) {
      return {
        ok: false,
        reason: `reason is ${shown(e.reason)}; expected up to 256 letters, digits, spaces and ._:,/()=+@#-`,
      };
    }
    let dryRun = false;
    if (e.dryRun === true || e.dryRun === 'true') dryRun = true;
    else if (!(e.dryRun === undefined || e.dryRun === false || e.dryRun === 'false')) {
      return { ok: false, reason: `dryRun is ${shown(e.dryRun)}; expected true or false` };
    }
    const used = parseBytes('usedBytes', e.usedBytes);
    if (used.problem) return { ok: false, reason: used.problem };
    const fs = parseBytes('filesystemBytes', e.filesystemBytes);
    if (fs.problem) return { ok: false, reason: fs.problem };
    if (fs.value === 0)
      return { ok: false, reason: 'filesystemBytes is 0; expected the filesystem size in bytes' };
    if (used.value !== undefined && fs.value !== undefined && used.value > fs.value) {
      return {
        ok: false,
        reason: `usedBytes (${used.value}) is larger than filesystemBytes (${fs.value}); expected used ≤ size`,
      };
    }
    return {
      ok: true,
      request: {
        instanceId: e.instanceId,
        volumeId,
        reason,
        dryRun,
        usedBytes: used.value,
        filesystemBytes: fs.value,
      },
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Output

export type ExpandStatus = 'started' | 'reused' | 'refused' | 'deferred' | 'dry-run' | 'invalid';

export interface ExpandResult {
  readonly status: ExpandStatus;
  readonly volumeId: string;
  readonly instanceId: string;
  /** The node's name from the volume's node tag ('' when unknown). */
  readonly node: string;
  readonly currentSizeGiB: number;
  readonly targetSizeGiB: number;
  readonly volumeType: string;
  /** Snapshot taken before the modification ('' when none). */
  readonly snapshotId: string;
  /** State of the modification started or reused ('' when none). */
  readonly modificationState: string;
  readonly reason: string;
  /** ISO time worth retrying after ('' unless deferred). */
  readonly retryAfter: string;
  /** How close targetSizeGiB is to the cap (`unchecked` unless started, reused or dry-run). */
  readonly capStatus: CapStatus | 'unchecked';
  /** The early warning near the cap ('' unless near-cap or at-cap). */
  readonly capWarning: string;
  /** Older pre-expansion snapshots of the volume deleted after the new one was taken. */
  readonly snapshotsDeleted: readonly string[];
  /** What the snapshot retention could not do (never fatal). */
  readonly snapshotRetentionProblems: readonly string[];
  /** AWS requests made, throttled attempts included. */
  readonly apiCalls: number;
}

// ---------------------------------------------------------------------------------------------
// Logic

export interface ExpandDeps {
  readonly ec2: EC2Client;
  /** Reads the node registry. */
  readonly ssm: SSMClient;
  readonly config: ExpandConfig;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Throttling retry options (tests inject a no-op sleep). */
  readonly retry?: RetryOptions;
}

const SIX_HOURS_MS = 6 * 3600_000;
const MIN_RETRY_MS = 15 * 60_000;

/** When it is worth asking again, given the modification in the way (if known). */
export function retryAfterFor(latest: VolumeModification | undefined, now: Date): string {
  const soonest = now.getTime() + MIN_RETRY_MS;
  const start = latest?.StartTime?.getTime();
  return new Date(start === undefined ? soonest : Math.max(soonest, start + SIX_HOURS_MS)).toISOString();
}

function describeMod(m: VolumeModification): string {
  const start = m.StartTime ? `, started ${m.StartTime.toISOString()}` : '';
  return `modification ${m.OriginalSize ?? '?'} → ${m.TargetSize ?? '?'} GiB (${m.ModificationState ?? 'unknown'}${start})`;
}

/** Runs the expansion decision and, unless refused/deferred/dry run, the snapshot and ModifyVolume. */
export async function expandVolume(event: unknown, deps: ExpandDeps): Promise<ExpandResult> {
  const { config } = deps;
  const now = deps.now ?? (() => new Date());
  const api = new Ec2Calls(deps.ec2, deps.retry);
  const base = {
    volumeId: '',
    instanceId: '',
    node: '',
    currentSizeGiB: 0,
    targetSizeGiB: 0,
    volumeType: '',
    snapshotId: '',
    modificationState: '',
    reason: '',
    retryAfter: '',
  };
  let ctx = base;
  let retention: { snapshotsDeleted: readonly string[]; snapshotRetentionProblems: readonly string[] } = {
    snapshotsDeleted: [],
    snapshotRetentionProblems: [],
  };
  const registry = { calls: 0 };
  const done = (status: ExpandStatus, fields: Partial<typeof base> = {}): ExpandResult => {
    const sized = { ...ctx, ...fields };
    const cap =
      status === 'started' || status === 'reused' || status === 'dry-run'
        ? capWarning(config, sized.targetSizeGiB, sized.volumeType, config.warnWithinPercent)
        : ({ capStatus: 'unchecked', warning: '' } as const);
    const result: ExpandResult = {
      status,
      ...sized,
      capStatus: cap.capStatus,
      capWarning: cap.warning,
      ...retention,
      apiCalls: api.count + registry.calls,
    };
    if (status === 'started' || status === 'reused' || status === 'dry-run') {
      logger.info(`expand-volume ${status}`, { decision: result });
    } else {
      logger.warn(`expand-volume ${status}`, { decision: result });
    }
    return result;
  };

  const parsed = parseExpandInput(event);
  if (!parsed.ok) {
    return done('invalid', { reason: parsed.reason });
  }
  const req = parsed.request;
  ctx = { ...ctx, instanceId: req.instanceId, volumeId: req.volumeId ?? '' };

  // 1. The volume: given, or the instance's one managed, attached volume.
  let volume: Volume;
  if (req.volumeId !== undefined) {
    const found = await describeVolume(api, req.volumeId);
    if (found === undefined) return done('refused', { reason: `volume ${req.volumeId} does not exist` });
    const problem =
      managedAttachmentProblem(found, req.instanceId, config.managedTagKey) ??
      deploymentProblem(found, config);
    if (problem !== undefined) return done('refused', { reason: problem });
    volume = found;
  } else {
    const candidates = await findManagedVolumes(api, req.instanceId, config.managedTagKey);
    const attached = candidates.filter(
      (v) => managedAttachmentProblem(v, req.instanceId, config.managedTagKey) === undefined,
    );
    const usable = attached.filter((v) => deploymentProblem(v, config) === undefined);
    const [only, ...more] = usable;
    if (only === undefined) {
      const [foreign] = attached;
      return done('refused', {
        reason:
          foreign !== undefined
            ? (deploymentProblem(foreign, config) as string)
            : `no volume tagged ${config.managedTagKey}=true is attached to ${req.instanceId}`,
      });
    }
    if (more.length > 0) {
      return done('refused', {
        reason: `${usable.length} volumes tagged ${config.managedTagKey}=true are attached to ${req.instanceId} (${usable.map((v) => v.VolumeId).join(', ')}); pass volumeId to choose one`,
      });
    }
    volume = only;
  }
  const volumeId = volume.VolumeId ?? req.volumeId ?? '';
  const sizeGiB = volume.Size ?? 0;
  const volumeType = volume.VolumeType ?? '';
  const node = tagsOf(volume)[config.nodeTagKey] ?? '';
  ctx = { ...ctx, volumeId, node, volumeType, currentSizeGiB: sizeGiB };
  const unregistered = await registeredNodeProblem(deps, registry, {
    node,
    instanceId: req.instanceId,
    volumeId,
  });
  if (unregistered !== undefined) return done('refused', { reason: unregistered });

  // 2. The latest modification decides whether a new one is possible or needed.
  const latest = latestModification(await describeModifications(api, volumeId));
  const usage = { volumeType, usedBytes: req.usedBytes, filesystemBytes: req.filesystemBytes };

  if (latest !== undefined && isInFlight(latest)) {
    const original = latest.OriginalSize ?? sizeGiB;
    const inFlightTarget = latest.TargetSize ?? original;
    const decision = decideTargetSize(config, { ...usage, currentSizeGiB: original });
    ctx = { ...ctx, currentSizeGiB: original, modificationState: latest.ModificationState ?? '' };
    if (decision.kind === 'unknown-type') return done('refused', { reason: decision.explanation });
    if (decision.kind === 'at-cap') {
      if (inFlightTarget > original) {
        return done('reused', {
          targetSizeGiB: inFlightTarget,
          reason: `${describeMod(latest)} is the last growth possible: ${decision.explanation}`,
        });
      }
      return done('refused', { reason: decision.explanation });
    }
    if (inFlightTarget >= decision.targetSizeGiB) {
      return done('reused', {
        targetSizeGiB: inFlightTarget,
        reason: `${describeMod(latest)} already reaches the ${decision.targetSizeGiB} GiB wanted`,
      });
    }
    return done('deferred', {
      targetSizeGiB: decision.targetSizeGiB,
      retryAfter: retryAfterFor(latest, now()),
      reason: `cannot expand before the ${describeMod(latest)} is completed; ${decision.explanation} is wanted`,
    });
  }

  if (latest !== undefined && unusedGrowth(latest, sizeGiB, req.filesystemBytes)) {
    return done('reused', {
      currentSizeGiB: latest.OriginalSize ?? sizeGiB,
      targetSizeGiB: sizeGiB,
      modificationState: latest.ModificationState ?? '',
      reason: `the ${describeMod(latest)} has not been grown into: the filesystem (${req.filesystemBytes} bytes) still fits the original size; grow the filesystem`,
    });
  }

  const decision: SizingDecision = decideTargetSize(config, { ...usage, currentSizeGiB: sizeGiB });
  if (decision.kind !== 'grow') return done('refused', { reason: decision.explanation });
  const previousFailure =
    latest?.ModificationState === 'failed'
      ? `; the previous ${describeMod(latest)}: ${latest.StatusMessage ?? 'no message'}; trying again`
      : '';
  const reasonText = `${decision.explanation}${previousFailure}`;
  ctx = { ...ctx, targetSizeGiB: decision.targetSizeGiB };
  if (req.dryRun) return done('dry-run', { reason: `would ${reasonText}` });

  // 3. Snapshot (not waited for), then the modification: one ModifyVolume call at most.
  let snapshotId = '';
  if (config.snapshotBeforeExpand) {
    const tags = [
      { Key: config.managedTagKey, Value: 'true' },
      { Key: config.nodeTagKey, Value: node },
      { Key: config.deploymentTagKey, Value: config.deployment },
      { Key: PURPOSE_TAG_KEY, Value: PURPOSE_TAG_VALUE },
    ];
    const description = `StemeDB expand-volume: before ${volumeId} grows ${sizeGiB} -> ${decision.targetSizeGiB} GiB ${req.reason}`;
    const snap = await api.call((c) =>
      c.send(
        new CreateSnapshotCommand({
          VolumeId: volumeId,
          Description: description.trim().slice(0, 255),
          TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }],
        }),
      ),
    );
    snapshotId = snap.SnapshotId ?? '';
    ctx = { ...ctx, snapshotId };
    logger.info('snapshot started', { volumeId, snapshotId, state: snap.State });
  }
  const outcome = await modifyOnce(api, volumeId, decision.targetSizeGiB, reasonText, latest, now);
  if (snapshotId !== '') {
    const applied = await applySnapshotRetention(
      api,
      volumeId,
      snapshotId,
      { keep: config.snapshotsKept, deleteAfterDays: config.snapshotsDeleteAfterDays },
      config,
      now(),
    );
    retention = { snapshotsDeleted: applied.deleted, snapshotRetentionProblems: applied.problems };
    if (applied.deleted.length > 0 || applied.problems.length > 0) {
      logger.info('pre-expansion snapshot retention', { volumeId, ...retention });
    }
  }
  return done(outcome.status, outcome.fields);
}

/**
 * The one ModifyVolume call and what its answer means: started, or deferred / reused on AWS's two
 * refusals (IncorrectModificationState reads the modifications once more, never modifies again).
 * Any other error is a fault and is thrown.
 */
async function modifyOnce(
  api: Ec2Calls,
  volumeId: string,
  targetSizeGiB: number,
  reasonText: string,
  latest: VolumeModification | undefined,
  now: () => Date,
): Promise<{
  status: ExpandStatus;
  fields: Partial<Pick<ExpandResult, 'targetSizeGiB' | 'modificationState' | 'reason' | 'retryAfter'>>;
}> {
  try {
    const out = await api.call((c) =>
      c.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: targetSizeGiB })),
    );
    return {
      status: 'started',
      fields: {
        modificationState: out.VolumeModification?.ModificationState ?? 'modifying',
        reason: reasonText,
      },
    };
  } catch (err) {
    const code = errorCode(err);
    const message = err instanceof Error ? err.message : String(err);
    if (code === 'VolumeModificationRateExceeded') {
      return {
        status: 'deferred',
        fields: {
          retryAfter: retryAfterFor(latest, now()),
          reason: `cannot expand now: AWS refused the modification (${code}: ${message})`,
        },
      };
    }
    if (code === 'IncorrectModificationState') {
      // Most likely a concurrent caller started one: read once more, never modify again.
      const again = latestModification(await describeModifications(api, volumeId));
      if (again !== undefined && isInFlight(again) && (again.TargetSize ?? 0) >= targetSizeGiB) {
        return {
          status: 'reused',
          fields: {
            targetSizeGiB: again.TargetSize ?? targetSizeGiB,
            modificationState: again.ModificationState ?? '',
            reason: `${describeMod(again)}, started concurrently, already reaches the ${targetSizeGiB} GiB wanted`,
          },
        };
      }
      return {
        status: 'deferred',
        fields: {
          retryAfter: retryAfterFor(again ?? latest, now()),
          reason: `cannot expand now: AWS refused the modification (${code}: ${message})`,
        },
      };
    }
    throw err;
  }
}

/**
 * Why `volume` is not this deployment's, or undefined when it is: it must carry
 * `<deploymentTagKey>=<deployment>`. The managed tag is the same in every deployment of the
 * account; IAM refuses another deployment's volume too, and this says why as data.
 */
export function deploymentProblem(volume: Volume, config: ExpandConfig): string | undefined {
  const id = volume.VolumeId ?? '(unknown volume)';
  const tag = tagsOf(volume)[config.deploymentTagKey];
  if (tag === config.deployment) return undefined;
  return tag === undefined
    ? `volume ${id} is not tagged ${config.deploymentTagKey}=${config.deployment}: only this deployment's volumes are expanded`
    : `volume ${id} belongs to deployment ${JSON.stringify(tag)} (${config.deploymentTagKey}), not ${config.deployment}: only this deployment's volumes are expanded`;
}

/**
 * Why the instance is not a registered node of this deployment with this volume, or undefined
 * when it is: the volume's node must have a registry entry (`<nodeParameterPrefix><node>`, written
 * by this stack) naming this instance and this volume. A missing entry or a mismatch is a refusal;
 * any other error reading the registry is a fault (thrown).
 */
export async function registeredNodeProblem(
  deps: Pick<ExpandDeps, 'ssm' | 'config' | 'retry'>,
  counter: { calls: number },
  found: { readonly node: string; readonly instanceId: string; readonly volumeId: string },
): Promise<string | undefined> {
  const { config } = deps;
  const { node, instanceId, volumeId } = found;
  const not = `${instanceId} is not a registered node of deployment ${config.deployment}`;
  if (node === '') return `${not}: volume ${volumeId} has no ${config.nodeTagKey} tag`;
  if (!NODE_NAME_PATTERN.test(node))
    return `${not}: volume ${volumeId} has ${config.nodeTagKey}=${JSON.stringify(node)}, which is not a node name`;
  const name = `${config.nodeParameterPrefix}${node}`;
  const read = await unlessAwsError('ParameterNotFound', undefined, async () => {
    const out = await withThrottlingRetry(() => {
      counter.calls++;
      return deps.ssm.send(new GetParameterCommand({ Name: name }));
    }, deps.retry);
    return { value: out.Parameter?.Value };
  });
  if (read === undefined) return `${not}: no registry entry ${name}`;
  const entry = parseNodeRegistryEntry(read.value, node);
  if (!entry.ok) return `${not}: registry entry ${name}: ${entry.reason}`;
  if (entry.value.instanceId !== instanceId)
    return `${not}: registry entry ${name} names instance ${entry.value.instanceId}`;
  if (entry.value.volumeId !== volumeId)
    return `${not}: registry entry ${name} names volume ${entry.value.volumeId}, not ${volumeId}`;
  return undefined;
}

/** Growth at least this fraction of the new size is told apart from filesystem overhead. */
const UNUSED_GROWTH_MIN_FRACTION = 0.1;

/**
 * True when the latest completed modification produced the volume's current size and the filesystem
 * still fits in the size before it: the growth has not been used yet (a repeated request, or a run
 * whose filesystem step failed), so growing again would be waste. Only for growth of at least 10% of
 * the new size, which filesystem overhead (ext4 ~2-6%, xfs < 1%) cannot be mistaken for.
 */
export function unusedGrowth(
  latest: VolumeModification,
  sizeGiB: number,
  filesystemBytes: number | undefined,
): boolean {
  const { ModificationState: state, OriginalSize: original, TargetSize: target } = latest;
  if (state !== 'completed' || filesystemBytes === undefined) return false;
  if (original === undefined || target === undefined || target !== sizeGiB || target <= original)
    return false;
  if (target - original < UNUSED_GROWTH_MIN_FRACTION * target) return false;
  return filesystemBytes <= original * GIB;
}

// ---------------------------------------------------------------------------------------------
// Handler

const METRIC_NAMES: Record<ExpandStatus, string> = {
  started: 'ExpansionStarted',
  reused: 'ExpansionReused',
  refused: 'ExpansionRefused',
  deferred: 'ExpansionDeferred',
  'dry-run': 'ExpansionDryRun',
  invalid: 'ExpansionInvalid',
};

/** Adds one metric for the outcome (dimension `node`); the handler flushes it. */
export function recordOutcome(result: ExpandResult): void {
  metrics.addDimension('node', result.node === '' ? 'unknown' : result.node);
  metrics.addMetric(METRIC_NAMES[result.status], MetricUnit.Count, 1);
  metrics.addMetadata('volumeId', result.volumeId);
  metrics.addMetadata('apiCalls', String(result.apiCalls));
}

const CONFIG = loadExpandConfig(process.env);
const ec2 = new EC2Client({ maxAttempts: 1 });
const ssm = new SSMClient({ maxAttempts: 1 });

export const handler = (event: unknown): Promise<ExpandResult> =>
  instrumentedInvocation('expand-volume', 'ExpansionError', async () => {
    const result = await expandVolume(event, { ec2, ssm, config: CONFIG });
    recordOutcome(result);
    return result;
  });
