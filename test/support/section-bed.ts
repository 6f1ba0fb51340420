/**
 * Shared set-up of the section tests: the hostile-parameter checks every host script's Command
 * document and script go through. The cases stay in each test file (they name the script's own
 * parameters); only the way they are run is shared here.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import type { CommandDocumentContent } from '../../lib/command-document';
import {
  ParameterValidationError,
  runCommandDocument,
  runScriptDirectly,
  synthesizeCommandDocument,
} from './command-document-runner';
import type { DiskOptions, LoopDeviceLab } from './loop-device';

/**
 * The disk of the section tests that fill a filesystem: 64 MiB of ext4 with no root reserve
 * (`-m 0`), so df's Use% and ENOSPC line up with what a test fills, and 4 KiB blocks (`-b 4096`;
 * a 64 MiB ext4 defaults to 1 KiB), so the fill's last 4 KiB writes leave no block free.
 */
export const FILLABLE_EXT4: DiskOptions = { sizeMiB: 64, fs: 'ext4', mkfsArgs: ['-m', '0', '-b', '4096'] };

/** A section's synthesized Command document and the mount point of its test disk. */
export interface SectionOnDisk {
  readonly doc: CommandDocumentContent;
  readonly mount: string;
}

/**
 * The set-up of a section test on a real filesystem: synthesizes the Command document `document`
 * and makes `disk` in `lab` (released by the file's `lab.cleanup()`), mounted; throws when it is
 * not. Call it in `beforeAll`.
 */
export function sectionOnLoopDisk(lab: LoopDeviceLab, document: string, disk: DiskOptions): SectionOnDisk {
  const doc = synthesizeCommandDocument(document);
  const { mountPoint } = lab.createDisk(disk);
  if (mountPoint === undefined) throw new Error(`${document}: the test disk is not mounted`);
  return { doc, mount: mountPoint };
}

/** A parameter name and the hostile value given to it. */
export type ParameterCase = readonly [name: string, value: string];

/**
 * A file that a hostile value would create if a shell ever ran it (`$(touch <canary>)`), in a
 * fresh directory removed after the suite. Call it inside a `describe`.
 */
export function canaryFile(label: string): string {
  return join(suiteTempDir(`${label}-canary`), 'ran');
}

/**
 * A fresh directory named `<label>-…` under the temp directory, removed with all it holds after
 * the suite (or the `describe` it is called in).
 */
export function suiteTempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * One test per case: the document's `allowedPattern`s reject the value (the runner throws
 * `ParameterValidationError` like SendCommand does) before any shell runs, so `canary` is never
 * created. `base` holds the parameters every run needs.
 */
export function rejectsBeforeAnyShellRuns(
  document: () => CommandDocumentContent,
  canary: string,
  cases: readonly ParameterCase[],
  base: Readonly<Record<string, string>> = { MountPoint: '/data' },
): void {
  test.each(cases)('rejects %s %j before any shell runs', async (name, value) => {
    await expect(runCommandDocument(document(), { ...base, [name]: value })).rejects.toBeInstanceOf(
      ParameterValidationError,
    );
    expect(existsSync(canary)).toBe(false);
  });
}

/**
 * Values a parameter must never let reach a shell: three that would touch `marker` if a shell
 * ran them (substitution, backticks, a second line), a command separator, pipes and a glob,
 * quotes, a space and an SSM `{{ }}` reference.
 */
export function shellInjections(marker: string): string[] {
  return [
    `; rm -rf / ; touch ${marker}`,
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `x\ntouch ${marker}`,
    '| reboot',
    '&& reboot',
    "'",
    '"',
    ' ',
    '*',
    '{{ InstanceId }}',
  ];
}

/**
 * One test per value of `hostile` (parameter name → its hostile values): the runner rejects the
 * parameter given that value alone with a `ParameterValidationError` naming it (`<name>: …`),
 * as SendCommand does, before any shell runs, so `marker` is never created (it is removed after
 * the suite). `env` gives the run's environment when the test runs. Call it inside a `describe`.
 */
export function rejectsHostileValuesBeforeAnyShellRuns(
  document: () => CommandDocumentContent,
  marker: string,
  hostile: Readonly<Record<string, readonly string[]>>,
  env: () => NodeJS.ProcessEnv | undefined = () => undefined,
): void {
  afterAll(() => rmSync(marker, { force: true }));
  const cases = Object.entries(hostile).flatMap(([name, values]) => values.map((v) => [name, v] as const));
  test.each(cases)('rejects %s = %j before any shell runs', async (name, value) => {
    const attempt = runCommandDocument(document(), { [name]: value }, { env: env() });
    await expect(attempt).rejects.toBeInstanceOf(ParameterValidationError);
    await expect(attempt).rejects.toThrow(new RegExp(`${name}: `));
    expect(existsSync(marker)).toBe(false);
  });
}

/**
 * One test per case: the script itself (run directly, not through the document) refuses the
 * value with exit 2 and says `invalid <name>`. The SSM service matches patterns in Java, where
 * "$" also matches before a final newline; the scripts check every value again with bash's
 * [[ =~ ]], where it does not, so the cases are the valid values with a trailing newline.
 */
export function scriptRefusesTrailingNewline(
  script: string,
  cases: readonly ParameterCase[],
  base: Readonly<Record<string, string>> = { MountPoint: '/data' },
): void {
  test.each(cases)('the script itself refuses %s with a trailing newline, exit 2', (name, value) => {
    const r = runScriptDirectly(script, { ...base, [name]: value });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`invalid ${name}`);
  });
}

/** What a simulated Automation run ended as and the steps it took (`simulateAutomation`). */
export interface SimulatedRun {
  readonly status: string;
  readonly path: readonly string[];
}

/**
 * For each step on the path of `simulate(failing)`, but branches, `Fail` steps, the steps already
 * failing and `skip` (best-effort steps): when it fails too, the execution ends Failed, and a
 * failure of any step but a `Notify` one is notified first (a Notify step runs after it).
 * `label` names the scenario in the failure messages.
 */
export function expectEachStepFailureFailsAndIsNotified(
  simulate: (failing: readonly string[]) => SimulatedRun,
  failing: readonly string[],
  label: string,
  skip: readonly string[] = [],
): void {
  for (const step of simulate(failing).path) {
    if (step.startsWith('Branch') || step.startsWith('Fail') || failing.includes(step)) continue;
    if (skip.includes(step)) continue;
    const sim = simulate([...failing, step]);
    const where = `${step} failing (${label}): ${sim.path.join(' → ')}`;
    expect(sim.status, where).toBe('Failed');
    if (!step.startsWith('Notify')) {
      const after = sim.path.slice(sim.path.indexOf(step) + 1);
      expect(
        after.some((s) => s.startsWith('Notify')),
        where,
      ).toBe(true);
    }
  }
}
