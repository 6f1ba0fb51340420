#!/usr/bin/env node
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, loadConfig, type StemeDbConfig } from '../lib/config';
import { addDiskStacks } from '../lib/disk-stacks';
import { parseShardLock, type ShardLock, shardLockProblems, updatedShardLock } from '../lib/fleet-shards';

// CDK's built-in CloudFormation validation is off: the tests run cfn-lint (stricter, the project's
// gate) on these templates, and the built-in pass took about half of every synth's CPU, growing
// with the template. cdk-nag (below) still runs on every synth.
const app = new App({ builtinCloudFormationValidation: false });

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/**
 * The shard lock (`-c stemedbShardLock=FILE`): the committed record of each node's shard. A
 * configuration that would move a locked node is refused, naming it; new nodes are added to the
 * file (commit it with the configuration). A missing file is an empty lock.
 */
function checkShardLock(config: StemeDbConfig, lockPath: unknown): void {
  if (lockPath === undefined) return;
  if (typeof lockPath !== 'string' || lockPath.length === 0) {
    fail(`context key "stemedbShardLock" must be a file path, got ${JSON.stringify(lockPath)}`);
  }
  const path = resolve(lockPath);
  let lock: ShardLock = {};
  try {
    if (existsSync(path)) lock = parseShardLock(readFileSync(path, 'utf8'), lockPath);
  } catch (err) {
    fail((err as Error).message);
  }
  const moves = shardLockProblems(config.nodes, config.fleet.shards, config.prefix, lock);
  if (moves.length > 0) fail(new ConfigError(moves).message);
  const next = updatedShardLock(config.nodes, config.fleet.shards, lock);
  const text = `${JSON.stringify(next, null, 2)}\n`;
  if (!existsSync(path) || readFileSync(path, 'utf8') !== text) writeFileSync(path, text);
}

let config: StemeDbConfig;
try {
  config = loadConfig((key) => app.node.tryGetContext(key));
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}
checkShardLock(config, app.node.tryGetContext('stemedbShardLock'));

addDiskStacks(app, config);

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
