/**
 * wait-for-volume-modification: waits until an EBS size modification is usable, i.e. in state
 * `optimizing` or `completed` with a target of at least `targetSizeGiB` (never waits for `completed`
 * alone: the new size is usable at `optimizing`, and `completed` can take hours). Called by the
 * `<Prefix>-ExpandVolume` Automation document after expand-volume returned started/reused.
 *
 * Input:  { volumeId, targetSizeGiB: number|string, maxWaitSeconds?: number|string (1..900) }
 * Output: { status, state, progress, targetSizeGiB, waitedSeconds, apiCalls, volumeId, reason }
 *   status: ready    the size is usable (state optimizing/completed, target ≥ targetSizeGiB)
 *           failed   the modification failed (reason = AWS StatusMessage), or the latest
 *                    modification targets less than targetSizeGiB
 *           pending  still `modifying` at the deadline: call again (the document can loop)
 *           invalid  bad input; no AWS call was made
 *   state: the modification's state ('' when none is visible yet); progress: 0..100.
 * The deadline is the smaller of maxWaitSeconds and the Lambda's remaining time minus a margin,
 * so the function always returns before its timeout (set the timeout ≥ maxWaitSeconds + 10 s).
 *
 * Polling backs off: the first wait is POLL_INTERVAL_SECONDS, each next one twice as long up to
 * MAX_POLL_INTERVAL_SECONDS, each with equal jitter (between half and all of it), so a fleet-wide
 * incident's expansions neither hammer EC2's describe budget nor poll in step. A modification
 * usable after 5 minutes costs 13 calls instead of 61 at a fixed 5 s (`npm run bench -- volume-wait`).
 *
 * Environment (validated at cold start):
 *   POLL_INTERVAL_SECONDS       the first wait between DescribeVolumesModifications calls (1..60, default 5)
 *   MAX_POLL_INTERVAL_SECONDS   the longest wait (1..300, at least POLL_INTERVAL_SECONDS, default 30)
 *   MAX_WAIT_SECONDS            default for maxWaitSeconds (1..900, default 300)
 */

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { EC2Client, type VolumeModification } from '@aws-sdk/client-ec2';
import type { Context } from 'aws-lambda';
import { VOLUME_ID_PATTERN } from '../contracts/aws-ids';
import { describeModifications, describeVolume, Ec2Calls, latestModification } from './shared/ec2-volume';
import { type ParsedPayload, parsePayload, shown } from './shared/payload';
import { instrumentedInvocation, logger, metrics } from './shared/powertools';
import type { RetryOptions } from './shared/retry';

export interface WaitConfig {
  /** The first wait between two polls. */
  readonly pollIntervalSeconds: number;
  /** The longest wait between two polls (the backoff's cap). */
  readonly maxPollIntervalSeconds: number;
  readonly maxWaitSeconds: number;
}

/**
 * The wait before poll `attempt + 1` (0 = after the first poll): the first interval doubled
 * `attempt` times, capped, with equal jitter (`random` in [0, 1): half the wait plus up to half).
 */
export function pollDelayMs(attempt: number, config: WaitConfig, random: () => number): number {
  const base = Math.min(
    config.maxPollIntervalSeconds,
    config.pollIntervalSeconds * 2 ** Math.min(attempt, 16),
  );
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(base * 1000 * (0.5 + 0.5 * r));
}

/** Reads and validates the environment. Throws one Error listing every bad variable. */
export function loadWaitConfig(env: NodeJS.ProcessEnv): WaitConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = /^\d{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(n >= min && n <= max)) {
      problems.push(
        `${name} is ${JSON.stringify(raw)}; expected a whole number of seconds from ${min} to ${max}`,
      );
      return fallback;
    }
    return n;
  };
  const config = {
    pollIntervalSeconds: int('POLL_INTERVAL_SECONDS', 5, 1, 60),
    maxPollIntervalSeconds: int('MAX_POLL_INTERVAL_SECONDS', 30, 1, 300),
    maxWaitSeconds: int('MAX_WAIT_SECONDS', 300, 1, 900),
  };
  if (problems.length === 0 && config.maxPollIntervalSeconds < config.pollIntervalSeconds) {
    problems.push(
      `MAX_POLL_INTERVAL_SECONDS (${config.maxPollIntervalSeconds}) is less than POLL_INTERVAL_SECONDS (${config.pollIntervalSeconds})`,
    );
  }
  if (problems.length > 0) {
    throw new Error(`wait-for-volume-modification configuration is invalid:\n  - ${problems.join('\n  - ')}`);
  }
  return config;
}

export interface WaitRequest {
  readonly volumeId: string;
  readonly targetSizeGiB: number;
  readonly maxWaitSeconds: number;
}

const INPUT_KEYS = new Set(['volumeId', 'targetSizeGiB', 'maxWaitSeconds']);

function wholeNumber(v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,6}$/.test(v) ? Number(v) : Number.NaN;
  return Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

/** Validates the payload; returns the request or the reason naming the bad field. */
export function parseWaitInput(event: unknown, defaults: WaitConfig): ParsedPayload<WaitRequest> {
  return parsePayload(event, INPUT_KEYS, (e) => {
    if (typeof e.volumeId !== 'string' || !VOLUME_ID_PATTERN.test(e.volumeId)) {
      return { ok: false, reason: `volumeId is ${shown(e.volumeId)}; expected vol- and 8 or 17 hex digits` };
    }
    const targetSizeGiB = wholeNumber(e.targetSizeGiB, 1, 65_536);
    if (targetSizeGiB === undefined) {
      return {
        ok: false,
        reason: `targetSizeGiB is ${shown(e.targetSizeGiB)}; expected a whole number from 1 to 65536`,
      };
    }
    let maxWaitSeconds = defaults.maxWaitSeconds;
    if (e.maxWaitSeconds !== undefined && e.maxWaitSeconds !== '') {
      const n = wholeNumber(e.maxWaitSeconds, 1, 900);
      if (n === undefined) {
        return {
          ok: false,
          reason: `maxWaitSeconds is ${shown(e.maxWaitSeconds)}; expected a whole number from 1 to 900`,
        };
      }
      maxWaitSeconds = n;
    }
    return { ok: true, request: { volumeId: e.volumeId, targetSizeGiB, maxWaitSeconds } };
  });
}

export type WaitStatus = 'ready' | 'failed' | 'pending' | 'invalid';

export interface WaitResult {
  readonly status: WaitStatus;
  readonly volumeId: string;
  /** The latest modification's state ('' when none is visible). */
  readonly state: string;
  readonly progress: number;
  readonly targetSizeGiB: number;
  readonly waitedSeconds: number;
  readonly apiCalls: number;
  readonly reason: string;
}

export interface WaitDeps {
  readonly ec2: EC2Client;
  readonly config: WaitConfig;
  /** @default setTimeout-based */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Milliseconds clock. @default Date.now */
  readonly nowMs?: () => number;
  /** The Lambda's remaining time (context.getRemainingTimeInMillis). @default unlimited */
  readonly remainingMs?: () => number;
  /** Kept free before the Lambda's timeout. @default 5000 */
  readonly marginMs?: number;
  readonly retry?: RetryOptions;
  /** The jitter's source, in [0, 1). @default Math.random */
  readonly random?: () => number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until the modification is usable, failed, or the deadline passes. */
export async function waitForVolumeModification(event: unknown, deps: WaitDeps): Promise<WaitResult> {
  const nowMs = deps.nowMs ?? Date.now;
  const sleep = deps.sleep ?? defaultSleep;
  const start = nowMs();
  const api = new Ec2Calls(deps.ec2, deps.retry);
  const parsed = parseWaitInput(event, deps.config);
  const result = (
    status: WaitStatus,
    fields: { volumeId?: string; targetSizeGiB?: number; mod?: VolumeModification; reason?: string },
  ): WaitResult => {
    const r: WaitResult = {
      status,
      volumeId: fields.volumeId ?? '',
      state: fields.mod?.ModificationState ?? '',
      progress: fields.mod?.Progress ?? 0,
      targetSizeGiB: fields.targetSizeGiB ?? 0,
      waitedSeconds: Math.round((nowMs() - start) / 1000),
      apiCalls: api.count,
      reason: fields.reason ?? '',
    };
    if (status === 'ready') logger.info('volume modification usable', { wait: r });
    else logger.warn(`volume modification ${status}`, { wait: r });
    return r;
  };
  if (!parsed.ok) return result('invalid', { reason: parsed.reason });
  const { volumeId, targetSizeGiB, maxWaitSeconds } = parsed.request;

  const marginMs = deps.marginMs ?? 5000;
  let deadline = start + maxWaitSeconds * 1000;
  if (deps.remainingMs) deadline = Math.min(deadline, start + deps.remainingMs() - marginMs);
  const random = deps.random ?? Math.random;

  for (let attempt = 0; ; attempt++) {
    const mod = latestModification(await describeModifications(api, volumeId));
    const state = mod?.ModificationState;
    const fields = { volumeId, targetSizeGiB, mod };
    if (mod === undefined) {
      // Not visible yet (eventual consistency) or never modified: the size itself may already do.
      const volume = await describeVolume(api, volumeId);
      if (volume === undefined)
        return result('failed', { ...fields, reason: `volume ${volumeId} does not exist` });
      if ((volume.Size ?? 0) >= targetSizeGiB) {
        return result('ready', { ...fields, reason: `the volume is already ${volume.Size} GiB` });
      }
    } else if (state === 'optimizing' || state === 'completed') {
      const target = mod.TargetSize ?? 0;
      if (target >= targetSizeGiB) return result('ready', fields);
      return result('failed', {
        ...fields,
        reason: `the latest modification of ${volumeId} (${state}) targets ${target} GiB, less than ${targetSizeGiB} GiB`,
      });
    } else if (state === 'failed') {
      return result('failed', {
        ...fields,
        reason: mod.StatusMessage ?? 'the modification failed (no message)',
      });
    }
    const delayMs = pollDelayMs(attempt, deps.config, random);
    if (nowMs() + delayMs > deadline) {
      return result('pending', {
        ...fields,
        reason: `still ${state ?? 'not visible'} after ${Math.round((nowMs() - start) / 1000)} s; call again`,
      });
    }
    await sleep(delayMs);
  }
}

const METRIC_NAMES: Record<WaitStatus, string> = {
  ready: 'ModificationReady',
  failed: 'ModificationFailed',
  pending: 'ModificationPending',
  invalid: 'ModificationWaitInvalid',
};

const CONFIG = loadWaitConfig(process.env);
const ec2 = new EC2Client({ maxAttempts: 1 });

export const handler = (event: unknown, context: Pick<Context, 'getRemainingTimeInMillis'>) =>
  instrumentedInvocation('wait-for-volume-modification', 'ModificationWaitError', async () => {
    const result = await waitForVolumeModification(event, {
      ec2,
      config: CONFIG,
      remainingMs: () => context.getRemainingTimeInMillis(),
    });
    metrics.addMetric(METRIC_NAMES[result.status], MetricUnit.Count, 1);
    metrics.addMetadata('volumeId', result.volumeId);
    return result;
  });
