#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, loadConfig } from '../lib/config';
import { StemeDbDiskStack } from '../lib/stemedb-disk-stack';

const app = new App();
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig((key) => app.node.tryGetContext(key));
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

new StemeDbDiskStack(app, `${config.prefix}-Disk`, {
  config,
  description: `${config.prefix} disk-full automation: data volumes, alarms, runbook automations`,
  // Environment-agnostic: deploys to the account and region of the credentials in use, and the
  // synthesized template (and its IAM ARNs) is the same on every machine.
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
