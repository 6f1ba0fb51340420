import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { buildSync } from 'esbuild';

/**
 * A small stand-in for the StemeDB server, for tests (StemeDB itself is not available here).
 *
 * Run as its own process (`standinCommand()` gives the command line, e.g. for a fake-systemd unit)
 * or started directly by a test (`startStandin()`). It logs to stdout, one line per event, like a
 * service whose output goes to the journal.
 *
 * Command line: `--port N --data-dir DIR [--config FILE] [--wal-dir DIR] [--host 127.0.0.1]
 *   [--max-segment-size-mb N] [--ignore-wal-retention] [--startup-delay-ms N] [--compaction-ms N]`
 *
 * - On start it reads `--config` (a TOML subset: tables, `key = value` with integers, floats,
 *   booleans, strings, one-line arrays, comments, multi-line strings). An unreadable or invalid
 *   file, a duplicate table or key, or invalid `[wal]` values (`retention_days` 1-3650,
 *   `max_segments` >= 1, `segment_size_mb` 1..`--max-segment-size-mb`, default 1024) make it log
 *   `ERROR: invalid configuration ...` and exit 1 before listening, as a server refusing its
 *   config does.
 * - With `[wal] retention_days = D` it removes the regular `*.log` files in the WAL directory
 *   (default `<data-dir>/wal`) modified more than D days ago and logs
 *   `WAL cleanup: removed N segments older than D days` (also when N is 0).
 *   `--ignore-wal-retention` skips this and the line (a build that ignores the setting).
 * - `GET /v1/health` → 200 `{"status":"ok"}`; 503 `{"status":"starting"}` during
 *   `--startup-delay-ms`.
 * - `POST /v1/assert` (JSON body) writes one record file `<data-dir>/db/assert-<ms>-<n>.json`
 *   (fsync'd) → 201; a failed write → 507 on ENOSPC/EDQUOT (logged as
 *   `ERROR: write failed: No space left on device`), 500 otherwise; invalid JSON → 400.
 * - `POST /v1/admin/compact` → 202 and a compaction that runs `--compaction-ms` (default 2000)
 *   and then deletes the `*.obsolete` files in `<data-dir>/db` (the space a compaction frees);
 *   409 while one runs.
 * - `GET /metrics` → Prometheus text: `stemedb_up`, `stemedb_compaction_progress` (0..1),
 *   `stemedb_compaction_running`, `stemedb_compaction_runs_total`,
 *   `stemedb_compaction_bytes_freed_total`, `stemedb_compaction_last_duration_seconds`,
 *   `stemedb_assertions_total`, `stemedb_write_errors_total{reason}`, `stemedb_wal_segments`,
 *   `stemedb_wal_bytes`, `stemedb_wal_retention_seconds`.
 * - SIGTERM/SIGINT: logs `Shutting down`, exits 0.
 */

export interface StandinOptions {
  /** Directory holding `db/` (records) and, by default, `wal/`. */
  readonly dataDir: string;
  /** config.toml to read at start. @default none (no config, no WAL cleanup) */
  readonly configFile?: string;
  /** @default `<dataDir>/wal` */
  readonly walDir?: string;
  /** Largest `[wal] segment_size_mb` this "build" accepts. @default 1024 */
  readonly maxSegmentSizeMb?: number;
  /** Do not apply `[wal] retention_days` and do not log the cleanup line. @default false */
  readonly ignoreWalRetention?: boolean;
  /** Health answers 503 for this long after listening. @default 0 */
  readonly startupDelayMs?: number;
  /** How long a compaction runs. @default 2000 */
  readonly compactionMs?: number;
}

export interface ListeningStandinOptions extends StandinOptions {
  readonly port: number;
}

/** This file (its compiled form runs as the stand-in process). */
export const STANDIN_FILE = __filename;
/** Repository root; the stand-in process runs here. */
export const STANDIN_CWD = resolve(dirname(__filename), '..', '..');

/** Command-line arguments for the stand-in process. */
export function standinArgs(opts: ListeningStandinOptions): string[] {
  const args = ['--port', String(opts.port), '--data-dir', opts.dataDir];
  if (opts.configFile !== undefined) args.push('--config', opts.configFile);
  if (opts.walDir !== undefined) args.push('--wal-dir', opts.walDir);
  if (opts.maxSegmentSizeMb !== undefined) args.push('--max-segment-size-mb', String(opts.maxSegmentSizeMb));
  if (opts.ignoreWalRetention === true) args.push('--ignore-wal-retention');
  if (opts.startupDelayMs !== undefined) args.push('--startup-delay-ms', String(opts.startupDelayMs));
  if (opts.compactionMs !== undefined) args.push('--compaction-ms', String(opts.compactionMs));
  return args;
}

/**
 * This file compiled to plain JavaScript (esbuild), cached under `node_modules/.cache` by content
 * hash: node starts it in about 50 ms where `node --import tsx` takes about 300 ms, and the tests
 * start the stand-in often.
 */
export function standinEntrypoint(): string {
  const hash = createHash('sha256').update(readFileSync(STANDIN_FILE)).digest('hex').slice(0, 16);
  const dir = join(STANDIN_CWD, 'node_modules', '.cache', 'stemedb-standin');
  const out = join(dir, `stemedb-standin-${hash}.cjs`);
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    buildSync({
      entryPoints: [STANDIN_FILE],
      outfile: tmp,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      logLevel: 'error',
    });
    renameSync(tmp, out);
  }
  return out;
}

/** The full command line (node + the compiled stand-in + args) and the directory to run it in. */
export function standinCommand(opts: ListeningStandinOptions): {
  command: string[];
  workingDirectory: string;
} {
  return {
    command: [process.execPath, standinEntrypoint(), ...standinArgs(opts)],
    workingDirectory: STANDIN_CWD,
  };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export interface RunningStandin {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  readonly healthUrl: string;
  readonly pid: number;
  /** Everything the process printed so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s (idempotent). */
  stop(): Promise<void>;
}

/** The stand-in process exited instead of answering health. */
export class StandinExitedError extends Error {
  constructor(
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(`stand-in exited with code ${exitCode} before it was healthy:\n${output}`);
    this.name = 'StandinExitedError';
  }
}

/**
 * SIGTERM, then SIGKILL after 5 s; resolves once `proc` exited (at once if it had). Other test
 * processes (moto_server) are stopped with it too; it lives here because this file runs on its
 * own, compiled without bundling, and so imports nothing but Node's modules.
 */
export function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise<void>((done) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    proc.kill('SIGTERM');
  });
}

/**
 * Starts the stand-in as a child process (no systemd) on a free port and waits until
 * `/v1/health` answers 200. Throws `StandinExitedError` if it exits first (e.g. invalid config).
 */
export async function startStandin(
  opts: StandinOptions & { port?: number },
  timeoutMs = 15_000,
): Promise<RunningStandin> {
  const port = opts.port ?? (await freePort());
  const { command, workingDirectory } = standinCommand({ ...opts, port });
  const [exe, ...args] = command;
  if (exe === undefined) throw new Error('empty stand-in command');
  const proc = spawn(exe, args, { cwd: workingDirectory, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((done) => proc.once('exit', () => done()));
  const baseUrl = `http://127.0.0.1:${port}`;
  const running: RunningStandin = {
    port,
    baseUrl,
    healthUrl: `${baseUrl}/v1/health`,
    pid: proc.pid ?? -1,
    output: () => out,
    stop: () => stopProcess(proc),
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await exited;
      throw new StandinExitedError(proc.exitCode, out);
    }
    try {
      const res = await fetch(running.healthUrl);
      if (res.status === 200) return running;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await running.stop();
  throw new Error(`stand-in did not become healthy on ${baseUrl} within ${timeoutMs} ms:\n${out}`);
}

// ---------------------------------------------------------------------------------------------
// The server (runs in the stand-in process).

type TomlValue = string | number | boolean | TomlValue[];
export type TomlTables = Map<string, Map<string, TomlValue>>;

/** Parses the TOML subset described above; throws with `line N: ...` on anything else. */
export function parseTomlSubset(text: string): TomlTables {
  const tables: TomlTables = new Map([['', new Map()]]);
  let current = tables.get('') as Map<string, TomlValue>;
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    const line = stripComment(raw).trim();
    if (line === '') continue;
    if (line.startsWith('[[')) throw new Error(`line ${n}: arrays of tables are not supported`);
    const header =
      /^\[\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)((?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*\]$/.exec(
        line,
      );
    if (header) {
      const name = line
        .slice(1, -1)
        .split('.')
        .map((p) => p.trim().replace(/^["']|["']$/g, ''))
        .join('.');
      if (tables.has(name) && name !== '') throw new Error(`line ${n}: table [${name}] defined twice`);
      current = new Map();
      tables.set(name, current);
      continue;
    }
    const kv = /^("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`line ${n}: cannot parse ${JSON.stringify(raw)}`);
    const key = (kv[1] ?? '').replace(/^["']|["']$/g, '');
    if (current.has(key)) throw new Error(`line ${n}: key ${key} defined twice`);
    const valueText = kv[2] ?? '';
    const ml = /^("""|''')/.exec(valueText);
    if (ml) {
      const delim = ml[1] ?? '"""';
      let body = valueText.slice(3);
      while (!body.includes(delim)) {
        i++;
        if (i >= lines.length) throw new Error(`line ${n}: unterminated multi-line string`);
        body += `\n${lines[i] ?? ''}`;
      }
      current.set(key, body.slice(0, body.indexOf(delim)));
      continue;
    }
    current.set(key, parseTomlValue(valueText, n));
  }
  return tables;
}

function stripComment(line: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== '') {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#') return line.slice(0, i);
  }
  return line;
}

function parseTomlValue(text: string, n: number): TomlValue {
  const t = text.trim();
  if (/^[+-]?(0|[1-9](_?[0-9])*)$/.test(t)) return Number(t.replace(/_/g, ''));
  if (/^[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  if (/^"([^"\\]|\\.)*"$/.test(t)) return JSON.parse(t) as string;
  if (/^'[^']*'$/.test(t)) return t.slice(1, -1);
  if (/^\[.*\]$/.test(t)) {
    const inner = t.slice(1, -1).trim();
    if (inner === '') return [];
    return inner
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map((p) => parseTomlValue(p, n));
  }
  throw new Error(`line ${n}: invalid value ${JSON.stringify(t)}`);
}

interface WalSettings {
  readonly retentionDays?: number;
  readonly maxSegments?: number;
  readonly segmentSizeMb?: number;
}

/** Checks the `[wal]` table; throws naming the key and the accepted range. */
export function walSettings(tables: TomlTables, maxSegmentSizeMb: number): WalSettings {
  const wal = tables.get('wal');
  if (wal === undefined) return {};
  const int = (key: string, min: number, max: number): number | undefined => {
    const v = wal.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new Error(`[wal] ${key} = ${JSON.stringify(v)}: expected an integer from ${min} to ${max}`);
    }
    return v;
  };
  return {
    retentionDays: int('retention_days', 1, 3650),
    maxSegments: int('max_segments', 1, Number.MAX_SAFE_INTEGER),
    segmentSizeMb: int('segment_size_mb', 1, maxSegmentSizeMb),
  };
}

function walSegments(walDir: string): { path: string; size: number; mtimeMs: number }[] {
  let names: string[];
  try {
    names = readdirSync(walDir);
  } catch {
    return [];
  }
  const out: { path: string; size: number; mtimeMs: number }[] = [];
  for (const name of names) {
    if (!name.endsWith('.log')) continue;
    const path = join(walDir, name);
    try {
      const st = statSync(path, { throwIfNoEntry: false });
      if (st?.isFile()) out.push({ path, size: st.size, mtimeMs: st.mtimeMs });
    } catch {
      // vanished
    }
  }
  return out;
}

interface CliOptions extends ListeningStandinOptions {
  readonly host: string;
}

function parseCli(argv: readonly string[]): CliOptions {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (flag: string): number | undefined => {
    const v = get(flag);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} ${v}: expected a whole number`);
    return n;
  };
  const port = num('--port');
  const dataDir = get('--data-dir');
  if (port === undefined || dataDir === undefined) throw new Error('usage: --port N --data-dir DIR [...]');
  return {
    port,
    dataDir,
    host: get('--host') ?? '127.0.0.1',
    configFile: get('--config'),
    walDir: get('--wal-dir'),
    maxSegmentSizeMb: num('--max-segment-size-mb'),
    ignoreWalRetention: argv.includes('--ignore-wal-retention'),
    startupDelayMs: num('--startup-delay-ms'),
    compactionMs: num('--compaction-ms'),
  };
}

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

function runServer(opts: CliOptions): void {
  const walDir = opts.walDir ?? join(opts.dataDir, 'wal');
  const dbDir = join(opts.dataDir, 'db');
  let wal: WalSettings = {};
  if (opts.configFile !== undefined) {
    try {
      wal = walSettings(
        parseTomlSubset(readFileSync(opts.configFile, 'utf8')),
        opts.maxSegmentSizeMb ?? 1024,
      );
    } catch (err) {
      log(`ERROR: invalid configuration ${opts.configFile}: ${(err as Error).message}`);
      process.exit(1);
    }
    log(`Loaded configuration ${opts.configFile}`);
  }
  if (wal.retentionDays !== undefined && opts.ignoreWalRetention !== true) {
    const cutoff = Date.now() - wal.retentionDays * 86_400_000;
    let removed = 0;
    for (const seg of walSegments(walDir)) {
      if (seg.mtimeMs < cutoff) {
        unlinkSync(seg.path);
        removed++;
      }
    }
    log(`WAL cleanup: removed ${removed} segments older than ${wal.retentionDays} days`);
  }

  const readyAt = Date.now() + (opts.startupDelayMs ?? 0);
  const compactionMs = opts.compactionMs ?? 2000;
  const stats = { assertions: 0, noSpace: 0, otherErrors: 0, runs: 0, freed: 0, lastDuration: 0 };
  let compaction: { started: number; timer: NodeJS.Timeout } | undefined;
  let lastProgress = 0;
  let seq = 0;

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const writeRecord = (body: string): void => {
    mkdirSync(dbDir, { recursive: true });
    const path = join(dbDir, `assert-${Date.now()}-${++seq}.json`);
    const fd = openSync(path, 'wx');
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      try {
        unlinkSync(path);
      } catch {
        // best effort
      }
      throw err;
    }
    closeSync(fd);
  };

  const finishCompaction = (): void => {
    let freed = 0;
    let names: string[] = [];
    try {
      names = readdirSync(dbDir);
    } catch {
      // no db dir yet
    }
    for (const name of names) {
      if (!name.endsWith('.obsolete')) continue;
      const path = join(dbDir, name);
      const st = statSync(path, { throwIfNoEntry: false });
      if (st?.isFile()) {
        unlinkSync(path);
        freed += st.size;
      }
    }
    const started = compaction?.started ?? Date.now();
    stats.runs++;
    stats.freed += freed;
    stats.lastDuration = (Date.now() - started) / 1000;
    lastProgress = 1;
    compaction = undefined;
    log(`Compaction finished: freed ${freed} bytes in ${stats.lastDuration.toFixed(1)} s`);
  };

  const metrics = (): string => {
    const segs = walSegments(walDir);
    const progress =
      compaction === undefined
        ? lastProgress
        : Math.min(0.99, (Date.now() - compaction.started) / compactionMs);
    const m: [string, string, string, string | number][] = [
      ['stemedb_up', 'gauge', '1 while the server runs.', 1],
      [
        'stemedb_compaction_progress',
        'gauge',
        'Progress of the current (or last) compaction, 0 to 1.',
        progress,
      ],
      ['stemedb_compaction_running', 'gauge', '1 while a compaction runs.', compaction === undefined ? 0 : 1],
      ['stemedb_compaction_runs_total', 'counter', 'Compactions finished.', stats.runs],
      ['stemedb_compaction_bytes_freed_total', 'counter', 'Bytes freed by compactions.', stats.freed],
      [
        'stemedb_compaction_last_duration_seconds',
        'gauge',
        'Duration of the last compaction.',
        stats.lastDuration,
      ],
      ['stemedb_assertions_total', 'counter', 'Assertions written.', stats.assertions],
      ['stemedb_wal_segments', 'gauge', 'WAL segment files.', segs.length],
      ['stemedb_wal_bytes', 'gauge', 'Bytes in WAL segment files.', segs.reduce((a, s) => a + s.size, 0)],
      [
        'stemedb_wal_retention_seconds',
        'gauge',
        'Configured WAL retention (0: unlimited).',
        (wal.retentionDays ?? 0) * 86_400,
      ],
    ];
    const lines: string[] = [];
    for (const [name, type, help, value] of m) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
    }
    lines.push(
      '# HELP stemedb_write_errors_total Failed assertion writes.',
      '# TYPE stemedb_write_errors_total counter',
      `stemedb_write_errors_total{reason="no_space"} ${stats.noSpace}`,
      `stemedb_write_errors_total{reason="other"} ${stats.otherErrors}`,
    );
    return `${lines.join('\n')}\n`;
  };

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((done, fail) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => done(body));
      req.on('error', fail);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/v1/health') {
      if (Date.now() < readyAt) send(res, 503, { status: 'starting' });
      else send(res, 200, { status: 'ok' });
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(metrics());
      return;
    }
    if (req.method === 'POST' && path === '/v1/assert') {
      const body = await readBody(req);
      try {
        JSON.parse(body);
      } catch {
        send(res, 400, { error: 'invalid JSON body' });
        return;
      }
      try {
        writeRecord(body);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC' || code === 'EDQUOT') {
          stats.noSpace++;
          log(`ERROR: write failed: No space left on device (${code}) in ${dbDir}`);
          send(res, 507, { error: 'No space left on device' });
        } else {
          stats.otherErrors++;
          log(`ERROR: write failed: ${(err as Error).message}`);
          send(res, 500, { error: (err as Error).message });
        }
        return;
      }
      stats.assertions++;
      send(res, 201, { status: 'created' });
      return;
    }
    if (req.method === 'POST' && path === '/v1/admin/compact') {
      const body = await readBody(req);
      let aggressive = false;
      try {
        const parsed: unknown = body.trim() === '' ? {} : JSON.parse(body);
        aggressive =
          typeof parsed === 'object' &&
          parsed !== null &&
          'aggressive' in parsed &&
          parsed.aggressive === true;
      } catch {
        send(res, 400, { error: 'invalid JSON body' });
        return;
      }
      if (compaction !== undefined) {
        send(res, 409, { status: 'already_running' });
        return;
      }
      compaction = { started: Date.now(), timer: setTimeout(finishCompaction, compactionMs) };
      lastProgress = 0;
      log(`Compaction started (aggressive=${aggressive})`);
      send(res, 202, { status: 'started' });
      return;
    }
    send(res, 404, { error: 'not found' });
  };

  const server = createHttpServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`ERROR: ${(err as Error).message}`);
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });
  server.on('error', (err) => {
    log(`ERROR: cannot listen on ${opts.host}:${opts.port}: ${err.message}`);
    process.exit(1);
  });
  server.listen(opts.port, opts.host, () => log(`StemeDB stand-in listening on ${opts.host}:${opts.port}`));

  const shutdown = (): void => {
    log('Shutting down');
    if (compaction !== undefined) clearTimeout(compaction.timer);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === __filename) {
  try {
    runServer(parseCli(process.argv.slice(2)));
  } catch (err) {
    log(`ERROR: ${(err as Error).message}`);
    process.exit(2);
  }
}
