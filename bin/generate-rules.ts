/**
 * Writes the files generated from the thresholds module (RUNBOOK_THRESHOLDS, data mount /data):
 *   prometheus/stemedb-disk-rules.yml   Prometheus alert rules
 *   docs/thresholds.md                  the thresholds table
 *   prometheus/alertmanager-sns.yml     a self-managed Alertmanager's configuration (example topic)
 *
 * Usage: `npm run rules` (writes them), `npm run rules -- --check` (writes nothing; exits 1 and
 * names each file that differs from the generator's output, e.g. in CI).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import { renderSelfManagedAlertmanagerExample } from '../lib/alertmanager-config';
import { renderPrometheusRules } from '../lib/prometheus-rules';
import { renderThresholdsDoc } from '../lib/thresholds-doc';

/** The data mount the committed files are generated for (the config default). */
export const GENERATED_DATA_MOUNT = '/data';

/**
 * The topic of the committed Alertmanager example: the name the stack gives it with the default
 * prefix, in an example account (the file says to set the deployment's own).
 */
export const EXAMPLE_ALERT_TOPIC = {
  topicArn: 'arn:aws:sns:eu-west-1:111122223333:StemeDB-prometheus-alerts',
  region: 'eu-west-1',
} as const;

export interface GeneratedFile {
  /** Path relative to the project root. */
  readonly path: string;
  readonly content: string;
}

/** The generated files and their expected content. */
export function generatedFiles(): readonly GeneratedFile[] {
  const options = { dataMount: GENERATED_DATA_MOUNT };
  return [
    {
      path: 'prometheus/stemedb-disk-rules.yml',
      content: renderPrometheusRules(RUNBOOK_THRESHOLDS, options),
    },
    { path: 'docs/thresholds.md', content: renderThresholdsDoc(RUNBOOK_THRESHOLDS, options) },
    {
      path: 'prometheus/alertmanager-sns.yml',
      content: renderSelfManagedAlertmanagerExample(EXAMPLE_ALERT_TOPIC),
    },
  ];
}

function readOrEmpty(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Paths (relative to root) whose committed content differs from the generator's output. */
export function staleFiles(root: string): string[] {
  return generatedFiles()
    .filter((f) => readOrEmpty(join(root, f.path)) !== f.content)
    .map((f) => f.path);
}

function main(argv: readonly string[]): number {
  const root = resolve(__dirname, '..');
  if (argv.includes('--check')) {
    const stale = staleFiles(root);
    for (const path of stale) {
      process.stderr.write(
        `${path} differs from the generator's output: run \`npm run rules\` and commit it\n`,
      );
    }
    return stale.length === 0 ? 0 : 1;
  }
  for (const f of generatedFiles()) {
    writeFileSync(join(root, f.path), f.content);
    process.stderr.write(`wrote ${f.path}\n`);
  }
  return 0;
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
