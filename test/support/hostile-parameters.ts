import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { CommandDocumentContent } from '../../lib/command-document';
import { ParameterValidationError, runCommandDocument } from './command-document-runner';

/**
 * The two checks every Command document's hostile values get: SendCommand rejects the value
 * before any shell runs (the document's patterns), and the script, run by itself, rejects it too
 * (exit 2), since anyone may run the file and Java's `$` lets a trailing newline through.
 */

/**
 * The document declares exactly the parameters its script reads (every `$SSM_<Name>` of the
 * script file), and `hostile` has values for each of them: none is left unchecked.
 */
export function expectDeclaresWhatTheScriptReads(
  doc: CommandDocumentContent,
  scriptFile: string,
  hostile: Readonly<Record<string, readonly string[]>>,
): void {
  const read = [...readFileSync(scriptFile, 'utf8').matchAll(/\$\{?SSM_([A-Za-z0-9]+)/g)].map((m) => m[1]);
  const declared = Object.keys(doc.parameters ?? {});
  expect(new Set(read)).toEqual(new Set(declared));
  expect(Object.keys(hostile).sort()).toEqual(declared.sort());
}

/**
 * Runs `doc` with `valid` and `name` = `value`: it must throw `ParameterValidationError` naming
 * the parameter, and no shell may have run (a `systemctl` first on PATH would leave a trace).
 * `env` is merged into the run's environment (its PATH is put after the trap's directory).
 */
export async function expectRejectedBeforeAnyShell(
  doc: CommandDocumentContent,
  valid: Readonly<Record<string, string>>,
  name: string,
  value: string,
  env: NodeJS.ProcessEnv = {},
): Promise<void> {
  const trap = mkdtempSync(join(tmpdir(), 'hostile-parameter-trap-'));
  try {
    writeFileSync(join(trap, 'systemctl'), `#!/bin/sh\ntouch ${join(trap, 'ran')}\n`);
    chmodSync(join(trap, 'systemctl'), 0o755);
    const err = await runCommandDocument(
      doc,
      { ...valid, [name]: value },
      { env: { ...env, PATH: `${trap}:${env.PATH ?? process.env.PATH}` } },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParameterValidationError);
    expect((err as ParameterValidationError).problems.join(' ')).toContain(name);
    expect(existsSync(join(trap, 'ran'))).toBe(false);
  } finally {
    rmSync(trap, { recursive: true, force: true });
  }
}

/**
 * Runs `script` by itself (bash, only PATH, `env` and the parameters as `SSM_<Name>`) once per
 * hostile value, each on top of `valid`; returns `name=value → exit N` for every run that did not
 * exit 2 (empty when the script refused them all as bad parameters).
 */
export async function scriptNonRejections(
  script: string,
  valid: Readonly<Record<string, string>>,
  hostile: Readonly<Record<string, readonly string[]>>,
  env: Readonly<Record<string, string>> = {},
): Promise<string[]> {
  const run = (parameters: Record<string, string>): Promise<number> =>
    new Promise((done) => {
      const ssm = Object.fromEntries(Object.entries(parameters).map(([k, v]) => [`SSM_${k}`, v]));
      const child = spawn('bash', [script], {
        env: { PATH: process.env.PATH ?? '', ...env, ...ssm },
        stdio: 'ignore',
      });
      child.on('close', (code) => done(code ?? -1));
    });
  const wrong: string[] = [];
  for (const [name, values] of Object.entries(hostile)) {
    for (const value of values) {
      const code = await run({ ...valid, [name]: value });
      if (code !== 2) wrong.push(`${name}=${JSON.stringify(value)} → exit ${code}`);
    }
  }
  return wrong;
}

/**
 * Registers the two hostile-value tests of a Command document: SendCommand rejects each value
 * before any shell runs ({@link expectRejectedBeforeAnyShell}), and the script by itself rejects
 * every one with exit 2 ({@link scriptNonRejections}). `doc` is read when the tests run (files
 * synthesize their documents in `beforeAll`).
 */
export function hostileValueTests(
  doc: () => CommandDocumentContent,
  script: string,
  valid: Readonly<Record<string, string>>,
  hostile: Readonly<Record<string, readonly string[]>>,
): void {
  test.each(Object.entries(hostile).flatMap(([name, values]) => values.map((v) => [name, v] as const)))(
    'rejects %s = %j before any shell runs',
    async (name, value) => {
      await expectRejectedBeforeAnyShell(doc(), valid, name, value);
    },
  );

  test('the script rejects every hostile value by itself too (exit 2, nothing run)', async () => {
    expect(await scriptNonRejections(script, valid, hostile)).toEqual([]);
  });
}

/**
 * Every whole number of each range (up to 10,000 of them, and the top) must pass the parameter's
 * `allowedPattern`, and the numbers just outside it must not: returns `name=value` for each that
 * does otherwise (empty when the patterns encode the ranges exactly).
 */
export function patternRangeProblems(
  doc: CommandDocumentContent,
  ranges: ReadonlyArray<readonly [name: string, lo: number, hi: number]>,
): string[] {
  const params = doc.parameters ?? {};
  const wrong: string[] = [];
  for (const [name, lo, hi] of ranges) {
    const re = new RegExp(params[name]?.allowedPattern ?? '^$');
    const expectOk = (v: number, ok: boolean) => {
      if (re.test(String(v)) !== ok) wrong.push(`${name}=${v} ${ok ? 'refused' : 'accepted'}`);
    };
    for (let v = lo; v <= Math.min(hi, lo + 10_000); v++) expectOk(v, true);
    expectOk(hi, true);
    expectOk(lo - 1, false);
    expectOk(hi + 1, false);
  }
  return wrong;
}
