import { describe, expect, it } from 'vitest';
import { type EbsVolumeType, VOLUME_LIMITS } from '../contracts/ebs';
import {
  capFor,
  capWarning,
  decideTargetSize,
  freeSpaceTargetGiB,
  GIB,
  MAX_OVERHEAD_FACTOR,
  type SizingPolicy,
} from '../lambda/shared/sizing-policy';

/** The defaults: 50% growth, at least 10 GiB, at most 4096 GiB, warning at 20% free. */
const DEFAULT: SizingPolicy = { growPercent: 50, minGrowGiB: 10, maxSizeGiB: 4096, warningFreePercent: 20 };
const UNCAPPED: SizingPolicy = { ...DEFAULT, maxSizeGiB: 65_536 };

describe('decideTargetSize: which rule wins', () => {
  const cases: {
    name: string;
    policy: SizingPolicy;
    current: number;
    type?: string;
    used?: number;
    fs?: number;
    target: number;
    rule: string;
  }[] = [
    {
      name: 'a 1 GiB volume grows by the minimum',
      policy: DEFAULT,
      current: 1,
      target: 11,
      rule: 'minGrowGiB',
    },
    {
      name: 'a 10 GiB volume grows by the minimum',
      policy: DEFAULT,
      current: 10,
      target: 20,
      rule: 'minGrowGiB',
    },
    {
      name: 'a 20 GiB volume: both rules agree on 30',
      policy: DEFAULT,
      current: 20,
      target: 30,
      rule: 'growPercent',
    },
    {
      name: 'a 100 GiB volume grows by 50%',
      policy: DEFAULT,
      current: 100,
      target: 150,
      rule: 'growPercent',
    },
    { name: 'an odd size rounds up', policy: DEFAULT, current: 101, target: 152, rule: 'growPercent' },
    {
      name: '10% of 100 is exactly 110 (no float noise)',
      policy: { ...DEFAULT, growPercent: 10 },
      current: 100,
      target: 110,
      rule: 'growPercent',
    },
    {
      name: 'free space wins when the disk is nearly full and growth is small',
      policy: { ...DEFAULT, growPercent: 10, minGrowGiB: 1 },
      current: 100,
      used: 99 * GIB,
      target: 124, // 99 / 0.8 = 123.75
      rule: 'freeSpace',
    },
    {
      name: 'free space scales by volume/filesystem size (overhead)',
      policy: { ...DEFAULT, growPercent: 10, minGrowGiB: 1 },
      current: 100,
      used: 99 * GIB,
      fs: 98 * GIB,
      target: 127, // 123.75 × 100/98 = 126.28
      rule: 'freeSpace',
    },
    {
      name: 'an exact free-space size is not rounded up',
      policy: { ...DEFAULT, growPercent: 1, minGrowGiB: 1 },
      current: 50,
      used: 80 * GIB,
      target: 100,
      rule: 'freeSpace',
    },
    {
      name: 'free space below the other rules does not matter',
      policy: DEFAULT,
      current: 100,
      used: 50 * GIB,
      fs: 98 * GIB,
      target: 150,
      rule: 'growPercent',
    },
    {
      name: 'a huge volume grows by 50% when under the cap',
      policy: UNCAPPED,
      current: 40_000,
      target: 60_000,
      rule: 'growPercent',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideTargetSize(c.policy, {
        currentSizeGiB: c.current,
        volumeType: c.type ?? 'gp3',
        usedBytes: c.used,
        filesystemBytes: c.fs,
      });
      expect(d).toMatchObject({
        kind: 'grow',
        currentSizeGiB: c.current,
        targetSizeGiB: c.target,
        rule: c.rule,
      });
    });
  }
});

describe('decideTargetSize: clamping and the cap', () => {
  it('clamps a huge volume to the gp3 maximum and names it', () => {
    const d = decideTargetSize(UNCAPPED, { currentSizeGiB: 60_000, volumeType: 'gp3' });
    expect(d).toMatchObject({ kind: 'grow', targetSizeGiB: 65_536, wantedSizeGiB: 90_000, clamped: true });
    expect(d.explanation).toContain('the gp3 maximum (65536 GiB)');
  });

  it('clamps to maxSizeGiB when it is below the type maximum', () => {
    const d = decideTargetSize(DEFAULT, { currentSizeGiB: 3000, volumeType: 'gp3' });
    expect(d).toMatchObject({
      kind: 'grow',
      targetSizeGiB: 4096,
      clamped: true,
      capName: 'maxSizeGiB (4096 GiB)',
    });
  });

  it('refuses at maxSizeGiB, naming maxSizeGiB', () => {
    const d = decideTargetSize(DEFAULT, { currentSizeGiB: 4096, volumeType: 'gp3' });
    expect(d).toMatchObject({ kind: 'at-cap', capGiB: 4096 });
    expect(d.explanation).toBe('the volume is 4096 GiB, at the cap: maxSizeGiB (4096 GiB)');
  });

  it('refuses a volume already above maxSizeGiB', () => {
    const d = decideTargetSize(DEFAULT, { currentSizeGiB: 5000, volumeType: 'gp3' });
    expect(d).toMatchObject({ kind: 'at-cap', capGiB: 4096, currentSizeGiB: 5000 });
  });

  it('names both caps when maxSizeGiB equals the type maximum', () => {
    const d = decideTargetSize(
      { ...DEFAULT, maxSizeGiB: 16_384 },
      { currentSizeGiB: 16_384, volumeType: 'gp2' },
    );
    expect(d.explanation).toContain('maxSizeGiB and the gp2 maximum (16384 GiB)');
  });

  const types = Object.keys(VOLUME_LIMITS) as EbsVolumeType[];
  for (const type of types) {
    const max = VOLUME_LIMITS[type].maxGiB;
    it(`refuses a ${type} volume at its maximum of ${max} GiB, naming the type`, () => {
      const d = decideTargetSize(UNCAPPED, { currentSizeGiB: max, volumeType: type });
      expect(d).toMatchObject({ kind: 'at-cap', capGiB: max });
      expect(d.explanation).toContain(`${type} maximum (${max} GiB)`);
    });
    it(`grows a ${type} volume one GiB below its maximum to exactly the maximum`, () => {
      const d = decideTargetSize(UNCAPPED, { currentSizeGiB: max - 1, volumeType: type });
      expect(d).toMatchObject({ kind: 'grow', targetSizeGiB: max, clamped: true });
    });
  }

  it('has the documented type maxima', () => {
    expect(Object.fromEntries(types.map((t) => [t, capFor(UNCAPPED, t).capGiB]))).toEqual({
      gp3: 65_536,
      io2: 65_536,
      gp2: 16_384,
      io1: 16_384,
      st1: 16_384,
      sc1: 16_384,
      standard: 1024,
    });
  });

  it('grows a standard volume to its 1024 GiB maximum, not beyond', () => {
    const d = decideTargetSize(DEFAULT, { currentSizeGiB: 1000, volumeType: 'standard' });
    expect(d).toMatchObject({ kind: 'grow', targetSizeGiB: 1024, clamped: true });
  });

  it('refuses an unknown volume type instead of guessing its limit', () => {
    const d = decideTargetSize(DEFAULT, { currentSizeGiB: 100, volumeType: 'gp9' });
    expect(d.kind).toBe('unknown-type');
    expect(d.explanation).toContain('"gp9"');
  });
});

describe('freeSpaceTargetGiB', () => {
  it('is undefined without usedBytes', () => {
    expect(freeSpaceTargetGiB({ currentSizeGiB: 100, volumeType: 'gp3' }, 20)).toBeUndefined();
  });

  it('does not shrink the target when the filesystem reports more than the volume', () => {
    const r = freeSpaceTargetGiB(
      { currentSizeGiB: 100, volumeType: 'gp3', usedBytes: 80 * GIB, filesystemBytes: 150 * GIB },
      20,
    );
    expect(r).toEqual({ sizeGiB: 100, overheadFactor: 1 });
  });

  it('caps the overhead factor when the filesystem fills only part of the volume', () => {
    const r = freeSpaceTargetGiB(
      { currentSizeGiB: 200, volumeType: 'gp3', usedBytes: 80 * GIB, filesystemBytes: 100 * GIB },
      20,
    );
    expect(r).toEqual({ sizeGiB: 125, overheadFactor: MAX_OVERHEAD_FACTOR });
  });

  it('handles a 64 TiB volume without losing precision', () => {
    const r = freeSpaceTargetGiB(
      { currentSizeGiB: 65_536, volumeType: 'gp3', usedBytes: 60_000 * GIB, filesystemBytes: 65_536 * GIB },
      20,
    );
    expect(r?.sizeGiB).toBe(75_000);
  });
});

describe('capWarning: the early warning near the cap', () => {
  it.each([
    // [size after the expansion, type, policy, margin %, status, what the sentence says]
    [100, 'gp3', DEFAULT, 25, 'clear', ''],
    [3071, 'gp3', DEFAULT, 25, 'clear', ''],
    [3072, 'gp3', DEFAULT, 25, 'near-cap', '(1024 GiB left): the next expansion can only grow it to the cap'],
    [4095, 'gp3', DEFAULT, 25, 'near-cap', '(1 GiB left)'],
    [
      4096,
      'gp3',
      DEFAULT,
      25,
      'at-cap',
      'at its cap, maxSizeGiB (4096 GiB): the next expansion will be refused',
    ],
    [4096, 'gp3', DEFAULT, 0, 'at-cap', 'the next expansion will be refused'],
    [4095, 'gp3', DEFAULT, 0, 'clear', ''],
    [1000, 'standard', UNCAPPED, 25, 'near-cap', 'the standard maximum (1024 GiB) (24 GiB left)'],
    [100, 'gp3', { ...DEFAULT, maxSizeGiB: 1000 }, 91, 'near-cap', 'the next expansion grows it to 150 GiB'],
    [4096, 'magnetic-tape', DEFAULT, 25, 'clear', ''],
    [0, 'gp3', DEFAULT, 100, 'clear', ''],
  ] as const)('%s GiB %s (margin %s%%) → %s', (size, type, policy, margin, status, says) => {
    const w = capWarning(policy, size, type, margin);
    expect(w.capStatus).toBe(status);
    if (says === '') expect(w.warning).toBe('');
    else expect(w.warning).toContain(says);
    if (status !== 'clear') expect(w.warning).toContain('AddDataVolume, runbook §5B');
  });
});
