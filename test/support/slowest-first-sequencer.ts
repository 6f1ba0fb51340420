import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Test files that take most of the suite's time, slowest first, with the seconds each took in a
 * whole `npm test` on 2 cores (2026-12-01; the Slowest test files the summary prints). Vitest orders files it has no results for by
 * size, largest first, and a fresh checkout (CI) has none: the drill, a short file that runs for
 * minutes, then starts last and the suite ends with one worker busy and one idle. Started first,
 * the long files overlap and the short ones fill the gaps (longest-processing-time-first).
 */
export const SLOW_TEST_FILES: ReadonlyArray<readonly [file: string, seconds: number]> = [
  ['test/drill.test.ts', 160],
  ['test/archive-wal-scale.test.ts', 100],
  ['test/fleet.test.ts', 90],
  ['test/archive-wal.test.ts', 66],
  ['test/archive-wal-faults.test.ts', 59],
  ['test/wal-cleanup.test.ts', 41],
  ['test/add-data-volume.automation.test.ts', 40],
  ['test/stack-lint.test.ts', 36],
  ['test/storage-settings.test.ts', 33],
  ['test/delete-archived-wal.test.ts', 30],
  ['test/notification-subjects.test.ts', 27],
];

/** Runs {@link SLOW_TEST_FILES} first, in that order; every other file after them in Vitest's order. */
export class SlowestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const rank = (spec: TestSpecification): number => {
      const i = SLOW_TEST_FILES.findIndex(([file]) => spec.moduleId.endsWith(`/${file}`));
      return i < 0 ? SLOW_TEST_FILES.length : i;
    };
    return base
      .map((spec, i) => ({ spec, i }))
      .sort((a, b) => rank(a.spec) - rank(b.spec) || a.i - b.i)
      .map((x) => x.spec);
  }
}
