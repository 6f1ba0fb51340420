import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import {
  CommandDocument,
  type CommandDocumentContent,
  type CommandDocumentProps,
  REPO_ROOT,
} from '../../lib/command-document';

/**
 * Runs a Command document on this machine the way SSM does, so tests exercise the synthesized
 * document (parameters, patterns, the embedded script) rather than a copy of the script.
 *
 * What SendCommand + the SSM agent do, and what this does in the same order:
 * 1. The service rejects unknown parameter names, missing required parameters (those without
 *    `default`) and values that fail `allowedPattern` / `allowedValues`. Nothing runs then:
 *    `runCommandDocument` throws `ParameterValidationError` before writing or spawning anything.
 * 2. Defaults fill the parameters not given.
 * 3. `interpolationType: ENV_VAR` parameters are exported as `SSM_<Name>` (inherited `SSM_*`
 *    variables are dropped, as in the agent's clean environment).
 * 4. The `aws:runShellScript` lines are joined with newlines into `_script.sh` (mode 0755) in a
 *    fresh directory, and run as `sh -c <path>` like the agent, so the script's `#!` line
 *    (`#!/usr/bin/env bash`) picks the shell.
 *
 * `allowedPattern` is tested with JavaScript semantics (`$` only at the very end). The construct
 * only admits patterns in the subset JavaScript, Java and Go RE2 read the same way.
 */

export interface RunOptions {
  /** Extra environment, merged over `process.env` (e.g. a PATH with stand-ins first). */
  readonly env?: NodeJS.ProcessEnv;
  /** Working directory. @default a fresh temp directory (the agent uses its orchestration dir) */
  readonly cwd?: string;
  /** Kill the whole process group after this long. @default 60_000 */
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The last non-empty stdout line parsed as a JSON object, or undefined. */
  readonly lastJson: Record<string, unknown> | undefined;
  readonly timedOut: boolean;
  readonly durationMs: number;
  /** The `SSM_*` variables the script saw. */
  readonly ssmEnv: Readonly<Record<string, string>>;
}

/** SendCommand's InvalidParameters: the command was rejected and nothing ran. */
export class ParameterValidationError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`InvalidParameters: ${problems.join('; ')}`);
    this.name = 'ParameterValidationError';
  }
}

export type ParameterCheck =
  | {
      readonly ok: true;
      readonly values: Readonly<Record<string, string>>;
      readonly env: Record<string, string>;
    }
  | { readonly ok: false; readonly problems: readonly string[] };

function stepOf(content: CommandDocumentContent) {
  const steps = content.mainSteps;
  if (steps.length !== 1 || steps[0]?.action !== 'aws:runShellScript') {
    throw new Error('runner supports documents with exactly one aws:runShellScript step');
  }
  return steps[0];
}

/** Step 1–3 above, without running anything: the values after defaults and the `SSM_*` env. */
export function checkCommandParameters(
  content: CommandDocumentContent,
  parameters: Readonly<Record<string, string>>,
): ParameterCheck {
  const declared = content.parameters ?? {};
  const problems: string[] = [];
  for (const name of Object.keys(parameters)) {
    if (!Object.hasOwn(declared, name)) problems.push(`${name}: unknown parameter`);
  }
  const values: Record<string, string> = {};
  const env: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const given = Object.hasOwn(parameters, name) ? parameters[name] : undefined;
    if (given === undefined && spec.default === undefined) {
      problems.push(`${name}: required parameter is missing`);
      continue;
    }
    const value = given ?? String(spec.default);
    if (given !== undefined) {
      if (!['String', 'Integer', 'Boolean'].includes(spec.type)) {
        problems.push(`${name}: type ${spec.type} is not supported by this runner`);
        continue;
      }
      if (spec.allowedPattern !== undefined && !new RegExp(spec.allowedPattern).test(value)) {
        problems.push(`${name}: ${JSON.stringify(value)} fails allowedPattern ${spec.allowedPattern}`);
      }
      if (spec.allowedValues !== undefined && !spec.allowedValues.includes(value)) {
        problems.push(
          `${name}: ${JSON.stringify(value)} is not one of ${JSON.stringify(spec.allowedValues)}`,
        );
      }
    }
    values[name] = value;
    if (spec.interpolationType === 'ENV_VAR') env[`SSM_${name}`] = value;
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, values, env };
}

function parseLastJson(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(last);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Validates the parameters as SSM does (throws `ParameterValidationError`, running nothing, when
 * they fail), then runs the document's shell script with the `SSM_*` environment.
 */
export async function runCommandDocument(
  content: CommandDocumentContent | object,
  parameters: Readonly<Record<string, string>>,
  opts: RunOptions = {},
): Promise<RunResult> {
  const doc = content as CommandDocumentContent;
  const step = stepOf(doc);
  const check = checkCommandParameters(doc, parameters);
  if (!check.ok) throw new ParameterValidationError(check.problems);
  const lines = step.inputs.runCommand;
  if (lines.some((l) => l.includes('{{'))) {
    throw new Error('runCommand contains {{ }}: this project passes parameters only as SSM_* variables');
  }

  const dir = mkdtempSync(join(tmpdir(), 'ssm-run-'));
  const scriptPath = join(dir, '_script.sh');
  writeFileSync(scriptPath, `${lines.join('\n')}\n`);
  chmodSync(scriptPath, 0o755);

  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSM_')));
  const env = { ...inherited, ...opts.env, ...check.env };
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const started = performance.now();
  try {
    return await new Promise<RunResult>((resolvePromise, reject) => {
      const child = spawn('sh', ['-c', scriptPath], {
        cwd: opts.cwd ?? dir,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid !== undefined) {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }, timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolvePromise({
          exitCode: code ?? (signal !== null ? 128 : 1),
          stdout,
          stderr,
          lastJson: parseLastJson(stdout),
          timedOut,
          durationMs: performance.now() - started,
          ssmEnv: check.env,
        });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Synthesizes a minimal stack holding one `CommandDocument` (after `customize`, e.g. an override
 * the stack applies to it) and returns the document content from the template, i.e. exactly what
 * CloudFormation would get.
 */
export function synthesizeCommandDocument(
  name: string,
  props: Partial<Omit<CommandDocumentProps, 'name'>> = {},
  customize: (doc: CommandDocument) => void = () => {},
): CommandDocumentContent {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'CommandDocumentTestStack');
  customize(new CommandDocument(stack, name, { prefix: 'StemeDB', ...props, name }));
  const documents = Template.fromStack(stack).findResources('AWS::SSM::Document');
  const [resource] = Object.values(documents) as Array<{ Properties: { Content: CommandDocumentContent } }>;
  if (resource === undefined) throw new Error(`no AWS::SSM::Document synthesized for ${name}`);
  return resource.Properties.Content;
}

/**
 * Runs `ssm-documents/scripts/<script>` by hand, bypassing its document: only `PATH` and the given
 * parameters as `SSM_<Name>`. Proves a script re-checks values the document's patterns should
 * have stopped (Java's `$` lets a trailing newline through, and anyone may run the file directly).
 */
export function runScriptDirectly(
  script: string,
  parameters: Readonly<Record<string, string>>,
  opts: { readonly cwd?: string } = {},
): SpawnSyncReturns<string> {
  const ssmEnv = Object.fromEntries(Object.entries(parameters).map(([k, v]) => [`SSM_${k}`, v]));
  return spawnSync('bash', [join(REPO_ROOT, 'ssm-documents', 'scripts', script)], {
    env: { PATH: process.env.PATH, ...ssmEnv },
    encoding: 'utf8',
    cwd: opts.cwd,
  });
}
