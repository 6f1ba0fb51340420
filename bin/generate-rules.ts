/**
 * Writes the files generated from the thresholds module (RUNBOOK_THRESHOLDS, data mount /data):
 *   prometheus/stemedb-disk-rules.yml   Prometheus alert rules
 *   docs/thresholds.md                  the thresholds table
 *
 * Usage: `npm run rules` (writes them), `npm run rules -- --check` (writes nothing; exits 1 and
 * names each file that differs from the generator's output, e.g. in CI).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import { renderPrometheusRules } from '../lib/prometheus-rules';
import { renderThresholdsDoc } from '../lib/thresholds-doc';

/** The data mount the committed files are generated for (the config default). */
export const GENERATED_DATA_MOUNT = '/data';

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
