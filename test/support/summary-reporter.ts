import type { Reporter, TestModule } from 'vitest/node';

/** How many of the slowest test files the closing lines name. */
const SLOWEST_FILES = 8;

/**
 * Prints, after Vitest's own summary, the slowest test files (import + tests and hooks, in
 * seconds: what to look at when the suite nears its time budget) and one plain closing line,
 * `N passed, N failed, N skipped`, so that tools reading the last line of a CI log count the
 * tests in any runner's format.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const times: { file: string; seconds: number }[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      const d = module.diagnostic();
      times.push({ file: module.relativeModuleId, seconds: (d.collectDuration + d.duration) / 1000 });
    }
    times.sort((a, b) => b.seconds - a.seconds);
    const slowest = times
      .slice(0, SLOWEST_FILES)
      .map((t) => `  ${t.seconds.toFixed(1).padStart(6)} s  ${t.file}`);
    if (slowest.length > 0) process.stdout.write(`\nSlowest test files:\n${slowest.join('\n')}\n`);
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
