import { type ChildProcess, spawn } from 'node:child_process';
import { freePort, stopProcess } from './stemedb-standin';

/**
 * A moto_server on 127.0.0.1, started and stopped by the tests that need it.
 * Every test file gets its own server on a free port, so files run in parallel safely.
 */
export interface MotoServer {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly port: number;
  /** Environment for the real AWS CLI and SDK: fake credentials, region, endpoint. */
  readonly env: NodeJS.ProcessEnv;
  /** Stops the server (idempotent). */
  stop(): Promise<void>;
  /** Clears all state (moto's reset API). */
  reset(): Promise<void>;
}

export const TEST_REGION = 'eu-west-1';

/** Fake credentials: moto accepts anything, and nothing must ever reach real AWS. */
export function fakeAwsEnv(endpoint: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
    AWS_DEFAULT_REGION: TEST_REGION,
    AWS_REGION: TEST_REGION,
    AWS_ENDPOINT_URL: endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_PAGER: '',
  };
}

async function waitUntilUp(endpoint: string, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null)
      throw new Error(`moto_server exited with code ${proc.exitCode} before it was up`);
    try {
      const res = await fetch(`${endpoint}/moto-api/`);
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`moto_server did not answer on ${endpoint} within ${timeoutMs} ms`);
}

/**
 * moto_server with one fix for its request authentication (used where authorization is on):
 * moto rebuilds a request's canonical query string from the URL as it received it, decoded, so a
 * signed S3 GET whose query carries a reserved character (`ListObjectsV2 prefix=wal/node/`, a
 * continuation token) fails with SignatureDoesNotMatch although AWS accepts it. SigV4's canonical
 * form encodes every key and value with only `-_.~` unreserved; the fix re-encodes them so, before
 * moto compares signatures. Nothing else of moto changes.
 */
const MOTO_WITH_SIGV4_QUERY_FIX = `
from urllib.parse import quote, unquote, urlsplit, urlunsplit
import moto.iam.access_control as access_control

_create = access_control.IAMRequestBase._create_aws_request

def _create_aws_request(self):
    request = _create(self)
    parts = urlsplit(request.url)
    if parts.query:
        pairs = [pair.partition('=') for pair in parts.query.split('&')]
        query = '&'.join(quote(unquote(k), safe='-_.~') + '=' + quote(unquote(v), safe='-_.~') for k, _, v in pairs)
        request.url = urlunsplit(parts._replace(query=query))
    return request

access_control.IAMRequestBase._create_aws_request = _create_aws_request
`;

/**
 * moto_server answering one request at a time. moto's server is threaded and its DynamoDB checks
 * a write's condition and then writes, without a lock, so two concurrent conditional writes to one
 * item can both pass; DynamoDB itself evaluates each conditional write on an item atomically. A
 * test of what concurrent conditional writes decide needs DynamoDB's guarantee, not moto's race.
 */
const MOTO_ONE_REQUEST_AT_A_TIME = `
import moto.server as server

_run_simple = server.run_simple

def run_simple(*args, **kwargs):
    kwargs['threaded'] = False
    return _run_simple(*args, **kwargs)

server.run_simple = run_simple
`;

const MOTO_MAIN = `
import sys
from moto.server import main
sys.exit(main(sys.argv[1:]))
`;

export interface MotoServerOptions {
  /** Apply the SigV4 canonical-query fix above (for tests that turn authorization on). @default false */
  readonly sigv4QueryFix?: boolean;
  /**
   * Answer one request at a time, so a conditional write is decided atomically as DynamoDB does
   * (see MOTO_ONE_REQUEST_AT_A_TIME). Slower under concurrent load. @default false
   */
  readonly oneRequestAtATime?: boolean;
}

/** Starts moto_server on a free loopback port and waits until it answers. */
export async function startMotoServer(opts: MotoServerOptions = {}): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const args = ['-H', '127.0.0.1', '-p', String(port)];
  const patches = [
    opts.sigv4QueryFix === true ? MOTO_WITH_SIGV4_QUERY_FIX : '',
    opts.oneRequestAtATime === true ? MOTO_ONE_REQUEST_AT_A_TIME : '',
  ].join('');
  const [command, argv] = patches ? ['python3', ['-c', patches + MOTO_MAIN, ...args]] : ['moto_server', args];
  const proc = spawn(command, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'false' },
  });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  try {
    await waitUntilUp(endpoint, proc, 30_000);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  let stopped = false;
  return {
    endpoint,
    port,
    env: fakeAwsEnv(endpoint),
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopProcess(proc);
    },
    async reset() {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
  };
}
