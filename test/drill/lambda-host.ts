import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Principal } from '../support/automation-runner';
import { collectOutput } from '../support/child-process';
import type { ResolvedResource } from '../support/resolved-template';

/**
 * The Lambda service of the drill: runs a function's BUNDLED handler (the `index.mjs` that
 * `cdk synth` staged in `cdk.out/asset.<hash>/`, exactly what would be uploaded) in a fresh
 * `node` process per invocation, with the function's environment from the template, its own
 * role's credentials, the region, and the endpoints of the drill (moto, and the local SSM
 * endpoint for Systems Manager). A fresh process per call is a cold start every time: the drill's
 * timings include it, which is the pessimistic case.
 *
 * The handler gets `(event, context)` like Lambda's Node.js runtime (context with
 * `functionName`, `awsRequestId`, `getRemainingTimeInMillis`); its return value is the payload;
 * a throw is `FunctionError: Unhandled` with `{errorType, errorMessage}` as payload, as Lambda
 * answers a RequestResponse invoke. The function's timeout kills the process.
 */

export interface LambdaInvocation {
  readonly statusCode: number;
  readonly functionError?: string;
  readonly payload: string;
  readonly logResult: string;
  readonly principal: string;
  readonly durationMs: number;
}

const RUNTIME = `
const { handler } = await import(process.env.DRILL_HANDLER_FILE);
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const event = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
const deadline = Date.now() + Number(process.env.AWS_LAMBDA_FUNCTION_TIMEOUT) * 1000;
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: '$LATEST',
  awsRequestId: crypto.randomUUID(),
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  callbackWaitsForEmptyEventLoop: true,
};
let out;
try {
  out = { result: await handler(event, context) };
} catch (err) {
  out = { error: { errorType: err?.name ?? 'Error', errorMessage: String(err?.message ?? err) } };
}
process.stdout.write('\\n@@drill-lambda-result@@' + JSON.stringify(out ?? {}) + '\\n', () => process.exit(0));
`;

export interface LambdaHostOptions {
  readonly cdkOut: string;
  readonly region: string;
  readonly motoEndpoint: string;
  readonly ssmEndpoint: () => string;
}

export class LambdaHost {
  constructor(private readonly opts: LambdaHostOptions) {}

  /** The staged bundle of a function resource. */
  bundleOf(fn: ResolvedResource, metadata: Record<string, unknown> | undefined): string {
    const assetPath = metadata?.['aws:asset:path'];
    if (typeof assetPath !== 'string')
      throw new Error(`function ${fn.logicalId} has no aws:asset:path metadata`);
    const file = join(this.opts.cdkOut, assetPath, 'index.mjs');
    if (!existsSync(file)) throw new Error(`the bundle of ${fn.ref} is missing: ${file}`);
    return file;
  }

  /** Invokes `fn` (its bundle) as `role` with `payload` (a JSON string). */
  async invoke(
    fn: ResolvedResource,
    bundle: string,
    role: Principal,
    payload: string,
    extraEnv: Readonly<Record<string, string>> = {},
  ): Promise<LambdaInvocation> {
    const p = fn.properties;
    const variables = ((p.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ??
      {}) as Record<string, unknown>;
    const timeout = Number(p.Timeout ?? 3);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      ...Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, String(v)])),
      ...extraEnv,
      AWS_ACCESS_KEY_ID: role.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: role.credentials.secretAccessKey,
      AWS_SESSION_TOKEN: role.credentials.sessionToken ?? '',
      AWS_REGION: this.opts.region,
      AWS_DEFAULT_REGION: this.opts.region,
      AWS_ENDPOINT_URL: this.opts.motoEndpoint,
      AWS_ENDPOINT_URL_SSM: this.opts.ssmEndpoint(),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_LAMBDA_FUNCTION_NAME: fn.ref,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(p.MemorySize ?? 128),
      AWS_LAMBDA_FUNCTION_TIMEOUT: String(timeout),
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
      DRILL_HANDLER_FILE: bundle,
    };
    const started = performance.now();
    return await new Promise<LambdaInvocation>((done, fail) => {
      const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', RUNTIME], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const output = collectOutput(child);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeout * 1000);
      child.on('error', fail);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const durationMs = performance.now() - started;
        const { stdout, stderr } = output;
        const marker = stdout.lastIndexOf('@@drill-lambda-result@@');
        const logs = (marker >= 0 ? stdout.slice(0, marker) : stdout) + stderr;
        const base = { logResult: logs, principal: role.name, durationMs };
        if (marker < 0) {
          const why =
            signal === 'SIGKILL' ? `Task timed out after ${timeout} seconds` : `exited with code ${code}`;
          done({
            ...base,
            statusCode: 200,
            functionError: 'Unhandled',
            payload: JSON.stringify({ errorType: 'Runtime.ExitError', errorMessage: `${fn.ref}: ${why}` }),
          });
          return;
        }
        const out = JSON.parse(stdout.slice(marker + '@@drill-lambda-result@@'.length)) as {
          result?: unknown;
          error?: { errorType: string; errorMessage: string };
        };
        if (out.error !== undefined) {
          done({ ...base, statusCode: 200, functionError: 'Unhandled', payload: JSON.stringify(out.error) });
          return;
        }
        done({ ...base, statusCode: 200, payload: JSON.stringify(out.result ?? null) });
      });
      child.stdin.end(payload);
    });
  }
}
