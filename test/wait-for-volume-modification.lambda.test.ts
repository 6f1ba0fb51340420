import {
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  EC2Client,
  type VolumeModification,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { logger, metrics } from '../lambda/shared/powertools';
import {
  handler,
  loadWaitConfig,
  pollDelayMs,
  type WaitDeps,
  waitForVolumeModification,
} from '../lambda/wait-for-volume-modification';
import { ec2Error } from './support/lambda-ec2-fixtures';

/** The waiter against a mocked EC2 client, with a fake clock: no real waiting. */

const VOLUME = 'vol-0123456789abcdef0';
const ec2Mock = mockClient(EC2Client);
const client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1 });

let clock = 0;
const sleeps: number[] = [];
function deps(over: Partial<WaitDeps> = {}): WaitDeps {
  return {
    ec2: client,
    // A constant 5 s (no backoff, no jitter) unless a test says otherwise.
    config: { pollIntervalSeconds: 5, maxPollIntervalSeconds: 5, maxWaitSeconds: 300 },
    random: () => 1,
    nowMs: () => clock,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    retry: { sleep: async () => {}, maxAttempts: 3 },
    ...over,
  };
}

function mod(state: VolumeModification['ModificationState'], over: Partial<VolumeModification> = {}) {
  return {
    VolumesModifications: [
      {
        VolumeId: VOLUME,
        ModificationState: state,
        OriginalSize: 100,
        TargetSize: 150,
        Progress: 10,
        ...over,
      },
    ],
  };
}

beforeAll(() => logger.setLogLevel('SILENT'));
beforeEach(() => {
  ec2Mock.reset();
  clock = 1_000_000;
  sleeps.length = 0;
});
afterEach(() => {
  vi.restoreAllMocks();
  metrics.clearMetadata();
});

describe('wait-for-volume-modification', () => {
  it('is ready at once when the modification is already optimizing', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).resolves(mod('optimizing', { Progress: 3 }));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toEqual({
      status: 'ready',
      volumeId: VOLUME,
      state: 'optimizing',
      progress: 3,
      targetSizeGiB: 150,
      waitedSeconds: 0,
      apiCalls: 1,
      reason: '',
    });
  });

  it('polls while modifying and is ready at optimizing, without waiting for completed', async () => {
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .resolvesOnce(mod('modifying'))
      .resolvesOnce(mod('modifying'))
      .resolves(mod('optimizing'));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: '150' }, deps());
    expect(r).toMatchObject({ status: 'ready', state: 'optimizing', waitedSeconds: 10, apiCalls: 3 });
    expect(sleeps).toEqual([5000, 5000]);
  });

  it('is ready when the modification is completed with a larger target', async () => {
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .resolves(mod('completed', { TargetSize: 200, Progress: 100 }));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toMatchObject({ status: 'ready', state: 'completed', progress: 100 });
  });

  it('returns failed with AWS’s status message when the modification fails', async () => {
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .resolvesOnce(mod('modifying'))
      .resolves(mod('failed', { StatusMessage: 'Volume modification failed: internal error' }));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toMatchObject({
      status: 'failed',
      state: 'failed',
      reason: 'Volume modification failed: internal error',
    });
  });

  it('returns failed when the latest modification targets less than wanted', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).resolves(mod('optimizing', { TargetSize: 120 }));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r.status).toBe('failed');
    expect(r.reason).toBe(
      `the latest modification of ${VOLUME} (optimizing) targets 120 GiB, less than 150 GiB`,
    );
  });

  it('returns pending at the deadline (maxWaitSeconds), never sleeping past it', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).resolves(mod('modifying'));
    const r = await waitForVolumeModification(
      { volumeId: VOLUME, targetSizeGiB: 150, maxWaitSeconds: 12 },
      deps(),
    );
    expect(r).toMatchObject({ status: 'pending', state: 'modifying', waitedSeconds: 10, apiCalls: 3 });
  });

  it('stops before the Lambda’s remaining time minus the margin', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).resolves(mod('modifying'));
    const r = await waitForVolumeModification(
      { volumeId: VOLUME, targetSizeGiB: 150, maxWaitSeconds: 900 },
      deps({ remainingMs: () => 20_000, marginMs: 5000 }),
    );
    expect(r.status).toBe('pending');
    expect(r.waitedSeconds).toBeLessThanOrEqual(15);
    expect(r.apiCalls).toBe(4);
  });

  it('is ready when no modification is visible but the volume already has the size', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).rejects(ec2Error('InvalidVolumeModification.NotFound'));
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: VOLUME, Size: 150 }] });
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toMatchObject({
      status: 'ready',
      state: '',
      reason: 'the volume is already 150 GiB',
      apiCalls: 2,
    });
  });

  it('keeps polling while a new modification is not visible yet', async () => {
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .rejectsOnce(ec2Error('InvalidVolumeModification.NotFound'))
      .resolves(mod('optimizing'));
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [{ VolumeId: VOLUME, Size: 100 }] });
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toMatchObject({ status: 'ready', state: 'optimizing', apiCalls: 3 });
  });

  it('returns failed for a volume that does not exist', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).rejects(ec2Error('InvalidVolumeModification.NotFound'));
    ec2Mock.on(DescribeVolumesCommand).rejects(ec2Error('InvalidVolume.NotFound'));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toMatchObject({ status: 'failed', reason: `volume ${VOLUME} does not exist` });
  });

  it('retries throttling and then succeeds', async () => {
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .resolves(mod('optimizing'));
    const r = await waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps());
    expect(r).toMatchObject({ status: 'ready', apiCalls: 2 });
  });

  it('surfaces throttling once the bounded retries are exhausted', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).rejects(ec2Error('RequestLimitExceeded'));
    await expect(
      waitForVolumeModification({ volumeId: VOLUME, targetSizeGiB: 150 }, deps()),
    ).rejects.toMatchObject({
      name: 'RequestLimitExceeded',
    });
    expect(ec2Mock.commandCalls(DescribeVolumesModificationsCommand)).toHaveLength(3);
  });

  const bad: [string, unknown][] = [
    ['a hostile volume ID', { volumeId: 'vol-1; rm -rf /', targetSizeGiB: 150 }],
    ['a missing target', { volumeId: VOLUME }],
    ['a target of "abc"', { volumeId: VOLUME, targetSizeGiB: 'abc' }],
    ['a fractional target', { volumeId: VOLUME, targetSizeGiB: 1.5 }],
    ['a target above 65536', { volumeId: VOLUME, targetSizeGiB: 70_000 }],
    ['maxWaitSeconds above 900', { volumeId: VOLUME, targetSizeGiB: 150, maxWaitSeconds: 5000 }],
    ['an unknown field', { volumeId: VOLUME, targetSizeGiB: 150, extra: 1 }],
    ['a string payload', VOLUME],
  ];
  for (const [name, event] of bad) {
    it(`returns invalid for ${name} and makes no AWS call`, async () => {
      const r = await waitForVolumeModification(event, deps());
      expect(r.status).toBe('invalid');
      expect(ec2Mock.calls()).toHaveLength(0);
    });
  }

  it('backs off: 5, 10, 20 s, then every 30 s, and calls 13 times (not 61) for a modification usable after 5 minutes', async () => {
    const usableAt = clock + 300_000;
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .callsFake(() => (clock >= usableAt ? mod('optimizing') : mod('modifying')));
    const r = await waitForVolumeModification(
      { volumeId: VOLUME, targetSizeGiB: 150, maxWaitSeconds: 900 },
      deps({ config: { pollIntervalSeconds: 5, maxPollIntervalSeconds: 30, maxWaitSeconds: 300 } }),
    );
    expect(r).toMatchObject({ status: 'ready', apiCalls: 13, waitedSeconds: 305 });
    expect(sleeps).toEqual([5000, 10_000, 20_000, ...Array(9).fill(30_000)]);
  });

  it('jitters each wait between half and all of it, so expansions started together do not poll in step', async () => {
    const config = { pollIntervalSeconds: 5, maxPollIntervalSeconds: 30, maxWaitSeconds: 300 };
    expect([0, 1, 2, 3, 9].map((a) => pollDelayMs(a, config, () => 0))).toEqual([
      2500, 5000, 10_000, 15_000, 15_000,
    ]);
    expect([0, 1, 2, 3, 9].map((a) => pollDelayMs(a, config, () => 0.5))).toEqual([
      3750, 7500, 15_000, 22_500, 22_500,
    ]);
    expect(pollDelayMs(60, config, () => 0.999_999)).toBe(30_000);
    ec2Mock.on(DescribeVolumesModificationsCommand).resolves(mod('modifying'));
    const r = await waitForVolumeModification(
      { volumeId: VOLUME, targetSizeGiB: 150, maxWaitSeconds: 60 },
      deps({ config, random: () => 0 }),
    );
    expect(sleeps).toEqual([2500, 5000, 10_000, 15_000, 15_000]);
    expect(r).toMatchObject({ status: 'pending', apiCalls: 6, waitedSeconds: 48 });
  });

  it('validates its environment, naming each bad variable', () => {
    expect(loadWaitConfig({})).toEqual({
      pollIntervalSeconds: 5,
      maxPollIntervalSeconds: 30,
      maxWaitSeconds: 300,
    });
    expect(() => loadWaitConfig({ POLL_INTERVAL_SECONDS: '0', MAX_WAIT_SECONDS: '1h' })).toThrow(
      [
        'wait-for-volume-modification configuration is invalid:',
        '  - POLL_INTERVAL_SECONDS is "0"; expected a whole number of seconds from 1 to 60',
        '  - MAX_WAIT_SECONDS is "1h"; expected a whole number of seconds from 1 to 900',
      ].join('\n'),
    );
    expect(() => loadWaitConfig({ POLL_INTERVAL_SECONDS: '20', MAX_POLL_INTERVAL_SECONDS: '10' })).toThrow(
      'MAX_POLL_INTERVAL_SECONDS (10) is less than POLL_INTERVAL_SECONDS (20)',
    );
    expect(() => loadWaitConfig({ MAX_POLL_INTERVAL_SECONDS: '301' })).toThrow(
      'MAX_POLL_INTERVAL_SECONDS is "301"; expected a whole number of seconds from 1 to 300',
    );
  });

  it('handler bounds the wait by the context’s remaining time and flushes a metric', async () => {
    ec2Mock.on(DescribeVolumesModificationsCommand).resolves(mod('modifying'));
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const publish = vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    // 5.5 s left and a 5 s margin: one poll, then pending, with no real sleep.
    const r = await handler(
      { volumeId: VOLUME, targetSizeGiB: 150 },
      { getRemainingTimeInMillis: () => 5500 },
    );
    expect(r).toMatchObject({ status: 'pending', apiCalls: 1 });
    expect(addMetric).toHaveBeenCalledWith('ModificationPending', 'Count', 1);
    expect(publish).toHaveBeenCalledTimes(1);
  });
});
