import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { resolveConfig, type StemeDbConfig } from '../../lib/config';
import { addDiskStacks } from '../../lib/disk-stacks';
import type { StemeDbDiskStack } from '../../lib/stemedb-disk-stack';

const CDK_JSON_CONTEXT = (
  JSON.parse(readFileSync(join(__dirname, '..', '..', 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;

export const TWO_NODES_FILE = join(__dirname, '..', 'fixtures', 'two-nodes.json');

export interface SynthResult {
  readonly app: App;
  readonly stack: StemeDbDiskStack;
  readonly template: Template;
  readonly config: StemeDbConfig;
}

/**
 * Synthesizes the app's stacks in-process as bin/app.ts builds them (the shared stack is the one
 * returned; node stacks exist when `fleet.shards` > 0: test/support/fleet-synth.ts reads those) with cdk-nag enabled (a nag error makes `app.synth()` throw).
 * Lambda bundling is skipped (`aws:cdk:bundling-stacks: []`): the template is the same, only the
 * asset hashes differ; the CLI test in stack-lint.test.ts bundles for real.
 */
export function synthStack(raw: Record<string, unknown>): SynthResult {
  const config = resolveConfig(raw);
  const app = new App({
    outdir: mkdtempSync(join(tmpdir(), 'stemedb-synth-')),
    // The feature flags of cdk.json, so the test synth behaves as `cdk synth` does.
    context: { ...CDK_JSON_CONTEXT, stemedb: undefined, 'aws:cdk:bundling-stacks': [] },
    // As bin/app.ts: cfn-lint, not CDK's built-in validation, checks the templates.
    builtinCloudFormationValidation: false,
  });
  const stack = addDiskStacks(app, config).shared;
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
  return { app, stack, config, template: Template.fromStack(stack) };
}
