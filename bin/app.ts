#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, loadConfig } from '../lib/config';
import { StemeDbDiskStack } from '../lib/stemedb-disk-stack';

// CDK's built-in CloudFormation validation is off: the tests run cfn-lint (stricter, the project's
// gate) on these templates, and the built-in pass took about half of every synth's CPU, growing
// with the template. cdk-nag (below) still runs on every synth.
const app = new App({ builtinCloudFormationValidation: false });
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
