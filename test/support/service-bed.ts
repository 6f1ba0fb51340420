/**
 * Shared set-up of the host-script tests that run a service under the fake systemd: per-test
 * clean-ups, a temp root holding `etc/stemedb/config.toml`, a unit started (or the run refused
 * with its stderr), and the StemeDB stand-in as `stemedb-api` on a free port, healthy before the
 * test goes on. Each test file still builds its own host (its paths, parameters and helpers)
 * on top of these parts.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, expect, vi } from 'vitest';
import type { CommandDocumentContent } from '../../lib/command-document';
import { type RunResult, synthesizeCommandDocument } from './command-document-runner';
import { createFakeSystemd, type FakeSystemd, type FakeUnit } from './fake-systemd';
import { freePort, type StandinOptions, standinCommand } from './stemedb-standin';

/**
 * The Command document `name`, synthesized once in the file's `beforeAll` (a synth error fails the
 * file's tests, not its collection). The returned function reads it in tests and hooks; it throws
 * when called before that `beforeAll` ran. Call it once at a test file's top level.
 */
export function synthesizedBeforeAll(name: string): () => CommandDocumentContent {
  let doc: CommandDocumentContent | undefined;
  beforeAll(() => {
    doc = synthesizeCommandDocument(name);
  });
  return () => {
    if (doc === undefined)
      throw new Error(`the ${name} Command document is read before beforeAll synthesized it`);
    return doc;
  };
}

/**
 * The run exited 0 (its stderr shown when not) and its result, the last JSON line, holds `fields`
 * (`toMatchObject`).
 */
export function expectSucceededWith(r: RunResult, fields: Record<string, unknown>): void {
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.lastJson).toMatchObject(fields);
}

/**
 * What every host-script test drives (each file's `Host` adds its own paths and helpers): a temp
 * root, the fake systemd the script talks to, runs of the synthesized document, and the files of
 * the directory the script writes in.
 */
export interface ScriptHost {
  readonly root: string;
  readonly systemd: FakeSystemd;
  /** Runs the synthesized document with these parameters over the host's own. */
  run(params?: Record<string, string>): Promise<RunResult>;
  /** The names in the directory the script writes in, sorted. */
  files(): string[];
}

/** What a test registers to undo after itself. */
export type Cleanup = () => Promise<void> | void;

/**
 * A list the current test pushes its clean-ups to; after each test they run, newest first, and
 * the list is emptied. Call it once at a test file's top level.
 */
export function cleanupsAfterEach(): Cleanup[] {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  return cleanups;
}

/** Does `url` answer with a 2xx status? (false when nothing listens). */
export function answersHealthy(url: string): Promise<boolean> {
  return fetch(url).then(
    (r) => r.ok,
    () => false,
  );
}

/** Polls `url` every 50 ms until it answers 2xx; throws naming it after `timeoutMs`. */
export async function waitHealthy(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await answersHealthy(url))) {
    if (Date.now() > deadline) throw new Error(`${url} never became healthy`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A temp root (named `<label>-…`, removed by `cleanups`) with `etc/stemedb/config.toml`. */
export interface ConfigRoot {
  readonly root: string;
  /** `<root>/etc/stemedb`. */
  readonly etc: string;
  /** `<root>/etc/stemedb/config.toml`, holding the given text. */
  readonly configFile: string;
}

/** Makes a `ConfigRoot` whose config file holds `config`, with mode `mode` (default 0640). */
export function configRoot(cleanups: Cleanup[], label: string, config: string, mode = 0o640): ConfigRoot {
  const root = mkdtempSync(join(tmpdir(), `${label}-`));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const etc = join(root, 'etc', 'stemedb');
  mkdirSync(etc, { recursive: true });
  const configFile = join(etc, 'config.toml');
  writeFileSync(configFile, config);
  chmodSync(configFile, mode);
  return { root, etc, configFile };
}

/**
 * A new fake systemd that knows `unit` (and removed by `cleanups`), with the unit started; throws
 * with systemctl's stderr when it does not start.
 */
export async function startedUnit(cleanups: Cleanup[], unit: string, spec: FakeUnit): Promise<FakeSystemd> {
  const systemd = createFakeSystemd({ [unit]: spec });
  cleanups.push(() => systemd.cleanup());
  const started = await systemd.systemctl('start', unit);
  if (started.code !== 0) throw new Error(`could not start ${unit}: ${started.stderr}`);
  return systemd;
}

/** The stand-in unit `startedStandin` starts. */
export const STANDIN_UNIT = 'stemedb-api';

export interface StandinServiceOptions {
  /** The stand-in's data directory. */
  readonly dataDir: string;
  /** The config.toml it reads at start. @default none */
  readonly configFile?: string;
  /** More stand-in options (faults, timings). @default none */
  readonly standin?: Partial<StandinOptions>;
  /** How long `systemctl start` watches the process. @default the fake's (0) */
  readonly startCheckMs?: number;
  /** Wraps the stand-in's command line (e.g. in a shell that refuses some configs first). @default none */
  readonly wrap?: (command: readonly string[]) => readonly string[];
}

/** The running stand-in unit. */
export interface StandinService {
  readonly systemd: FakeSystemd;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  /** `<baseUrl>/v1/health` */
  readonly healthUrl: string;
}

/** The stand-in as the started `stemedb-api` unit of a new fake systemd, healthy on a free port. */
export async function startedStandin(
  cleanups: Cleanup[],
  opts: StandinServiceOptions,
): Promise<StandinService> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const healthUrl = `${baseUrl}/v1/health`;
  const standin = standinCommand({
    port,
    dataDir: opts.dataDir,
    configFile: opts.configFile,
    ...opts.standin,
  });
  const systemd = await startedUnit(cleanups, STANDIN_UNIT, {
    ...standin,
    command: opts.wrap === undefined ? standin.command : [...opts.wrap(standin.command)],
    startCheckMs: opts.startCheckMs,
  });
  await waitHealthy(healthUrl);
  // The journal is written by a reader of the service's output, which can lag its health answer:
  // wait for the stand-in's last start-up line, so a test that counts entries starts from a settled log.
  await vi.waitFor(
    () => {
      const messages = systemd.journal(STANDIN_UNIT).map((e) => e.message);
      if (!messages.some((m) => m.startsWith('StemeDB stand-in listening on'))) throw new Error('not yet');
    },
    { timeout: 10_000, interval: 25 },
  );
  return { systemd, port, baseUrl, healthUrl };
}
