import { defineConfig } from 'vitest/config';
import { preferPyenvInterpreter } from './test/support/python-path.js';
import { SlowestFirstSequencer } from './test/support/slowest-first-sequencer.js';

// Every worker inherits this PATH: python3, aws, moto_server and cfn-lint without pyenv's shim.
preferPyenvInterpreter();
// As bin/app.ts, for the tests' own `new App()`s: CDK's built-in CloudFormation validation off
// (cfn-lint checks the synthesized templates; the built-in pass doubled every Template.fromStack).
process.env.CDK_VALIDATION ??= 'false';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-part tests (loop devices, moto_server, synth + cfn-lint) take seconds each.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: two workers keep the loop-device and moto tests from starving each other.
    maxWorkers: 2,
    pool: 'forks',
    // The long real-part files first, so the suite does not end on one of them alone.
    sequence: { sequencer: SlowestFirstSequencer },
    // Vitest's own report, then one plain "N passed, N failed, N skipped" line for CI logs.
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
