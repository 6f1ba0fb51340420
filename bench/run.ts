/**
 * Runs every benchmark in bench/ (each `bench/<name>.ts` except this file), one after the other,
 * each in its own `tsx` process so one bench's memory and servers never affect the next.
 *
 *   npm run bench                      every bench
 *   npm run bench -- archive-wal       only the benches whose file name contains an argument
 *
 * To add a bench, drop `bench/<name>.ts` that does its work when run (`tsx bench/<name>.ts`)
 * and prints its figures; nothing here needs to change. Exit status: non-zero if any bench failed.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const BENCH_DIR = resolve(__dirname);
const TSX = join(BENCH_DIR, '..', 'node_modules', '.bin', 'tsx');

function benches(filters: readonly string[]): string[] {
  return readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.d.ts'))
    .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
    .sort();
}

function main(): void {
  const selected = benches(process.argv.slice(2));
  if (selected.length === 0) {
    console.error(`no bench matches ${JSON.stringify(process.argv.slice(2))}`);
    process.exit(2);
  }
  const failed: string[] = [];
  for (const file of selected) {
    console.log(`\n=== bench/${file} ===`);
    const started = performance.now();
    const r = spawnSync(TSX, [join(BENCH_DIR, file)], { stdio: 'inherit' });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `=== bench/${file}: ${r.status === 0 ? 'done' : `FAILED (exit ${r.status ?? r.signal})`} in ${seconds} s ===`,
    );
    if (r.status !== 0) failed.push(file);
  }
  if (failed.length > 0) {
    console.error(`failed: ${failed.join(', ')}`);
    process.exit(1);
  }
}

main();
