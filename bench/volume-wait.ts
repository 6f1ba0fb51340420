/**
 * Fleet-wide expansion wait: N volumes are modified at once (an incident filling N disks) and
 * each ExpandVolume waits for its modification with the wait-for-volume-modification Lambda's
 * logic (lambda/wait-for-volume-modification.ts `waitForVolumeModification`), against a mocked
 * EC2 whose modification turns `optimizing` after a per-volume time (seeded: 1 to 10 minutes,
 * the alarms arriving over one minute). Time is virtual; every DescribeVolumesModifications call
 * is recorded. Two pollers are compared: a constant 5 s (the waiter before backoff) and the
 * deployed one (5 s doubling to 30 s, equal jitter).
 *
 * Printed per poller: calls per expansion (mean and max), calls for the whole fleet, the busiest
 * second and the busiest 10 s (calls per second). EC2 throttles each non-mutating action per
 * account and Region with a token bucket (100 tokens, 20 a second: "Request throttling for the
 * Amazon EC2 API"); the bench fails if, for up to 200 expansions at once, the deployed poller needs
 * more than 20 a second sustained over 10 s, or any expansion is not ready. (Beyond that the
 * router's `remediation.maxConcurrent`, default 10, is what keeps the waits few: it never runs
 * more remediations at once.)
 *
 *   npm run bench -- volume-wait              (fleets of 1, 200 and 500 volumes)
 *   npx tsx bench/volume-wait.ts 200
 */
import { DescribeVolumesModificationsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { logger } from '../lambda/shared/powertools';
import { type WaitConfig, waitForVolumeModification } from '../lambda/wait-for-volume-modification';

const REFILL_PER_SECOND = 20;
/** The largest number of simultaneous expansions the refill check applies to (issue 10: 200). */
const CHECKED_UP_TO = 200;

interface Poller {
  readonly name: string;
  readonly config: WaitConfig;
}

const POLLERS: readonly Poller[] = [
  {
    name: 'constant 5 s',
    config: { pollIntervalSeconds: 5, maxPollIntervalSeconds: 5, maxWaitSeconds: 900 },
  },
  {
    name: '5 s doubling to 30 s, jittered',
    config: { pollIntervalSeconds: 5, maxPollIntervalSeconds: 30, maxWaitSeconds: 900 },
  },
];

/** A small seeded PRNG (mulberry32), so every run measures the same fleet. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Figures {
  readonly meanCalls: number;
  readonly maxCalls: number;
  readonly totalCalls: number;
  readonly peakSecond: number;
  readonly peak10sPerSecond: number;
  readonly notReady: number;
}

async function measure(poller: Poller, volumes: number): Promise<Figures> {
  const fleet = prng(42);
  const jitter = prng(7);
  const ec2Mock = mockClient(EC2Client);
  const client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1 });
  const callTimes: number[] = [];
  const perVolume: number[] = [];
  let notReady = 0;
  let clock = 0;
  let usableAt = 0;
  ec2Mock.on(DescribeVolumesModificationsCommand).callsFake((input: { VolumeIds?: string[] }) => {
    callTimes.push(clock);
    return {
      VolumesModifications: [
        {
          VolumeId: input.VolumeIds?.[0],
          ModificationState: clock >= usableAt ? 'optimizing' : 'modifying',
          TargetSize: 200,
          Progress: 0,
        },
      ],
    };
  });
  for (let i = 0; i < volumes; i++) {
    const startedAt = fleet() * 60_000;
    usableAt = startedAt + 60_000 + fleet() * 540_000;
    clock = startedAt;
    const before = callTimes.length;
    const r = await waitForVolumeModification(
      { volumeId: `vol-${i.toString(16).padStart(17, '0')}`, targetSizeGiB: 200 },
      {
        ec2: client,
        config: poller.config,
        nowMs: () => clock,
        sleep: async (ms) => {
          clock += ms;
        },
        random: jitter,
      },
    );
    if (r.status !== 'ready') notReady++;
    perVolume.push(callTimes.length - before);
  }
  ec2Mock.restore();
  const bySecond = new Map<number, number>();
  for (const t of callTimes)
    bySecond.set(Math.floor(t / 1000), (bySecond.get(Math.floor(t / 1000)) ?? 0) + 1);
  const seconds = [...bySecond.keys()];
  let peak10 = 0;
  for (const s of seconds) {
    let n = 0;
    for (let k = s; k < s + 10; k++) n += bySecond.get(k) ?? 0;
    peak10 = Math.max(peak10, n);
  }
  return {
    meanCalls: perVolume.reduce((a, b) => a + b, 0) / volumes,
    maxCalls: Math.max(...perVolume),
    totalCalls: callTimes.length,
    peakSecond: Math.max(...bySecond.values()),
    peak10sPerSecond: peak10 / 10,
    notReady,
  };
}

async function main(): Promise<void> {
  logger.setLogLevel('SILENT');
  const sizes = process.argv.slice(2).map(Number);
  const fleets = sizes.length > 0 ? sizes : [1, 200, 500];
  const failures: string[] = [];
  console.log(
    'volumes  poller                            calls/expansion (mean, max)  fleet calls  busiest 1 s  busiest 10 s (per s)',
  );
  for (const volumes of fleets) {
    for (const poller of POLLERS) {
      const f = await measure(poller, volumes);
      console.log(
        `${String(volumes).padStart(7)}  ${poller.name.padEnd(32)}  ${f.meanCalls.toFixed(1).padStart(6)}, ${String(f.maxCalls).padStart(4)}                 ${String(f.totalCalls).padStart(11)}  ${String(f.peakSecond).padStart(11)}  ${f.peak10sPerSecond.toFixed(1).padStart(10)}`,
      );
      if (f.notReady > 0) failures.push(`${poller.name}, ${volumes} volumes: ${f.notReady} not ready`);
      if (
        poller === POLLERS[POLLERS.length - 1] &&
        volumes <= CHECKED_UP_TO &&
        f.peak10sPerSecond > REFILL_PER_SECOND
      )
        failures.push(
          `${poller.name}, ${volumes} volumes: ${f.peak10sPerSecond.toFixed(1)} DescribeVolumesModifications a second over 10 s, above EC2's refill of ${REFILL_PER_SECOND}`,
        );
    }
  }
  if (failures.length > 0) {
    console.error(`volume-wait: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log(
    `volume-wait: the deployed poller stays within ${REFILL_PER_SECOND} calls a second for up to ${CHECKED_UP_TO} expansions at once`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
