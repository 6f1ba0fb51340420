import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fork server for Python programs that use boto3: one `python3` per Node process imports boto3
 * and loads the service models once, then forks a child for each program. A child is a process
 * of its own, as a fresh `python3` would be (its own environment, working directory, process
 * group, standard streams and exit status; a kill ends it and whatever it started), but starts
 * in milliseconds instead of the ~0.5 s of CPU that importing boto3 and loading a service model
 * costs: the local Automation runner runs hundreds of `aws:executeScript` and
 * `aws:executeAwsApi` steps a drill.
 *
 * What the child does is the caller's Python, unchanged: boto3's default session is created in
 * the child from the child's environment (credentials, region, endpoint), exactly as in a new
 * interpreter; only botocore's data loader (the JSON models on disk) is the warm one.
 *
 * ```ts
 * const run = await runForked('import sys; print(sys.stdin.read())', 'hello', { PATH: '/usr/bin' });
 * run.stdout;     // 'hello\n'
 * run.exitCode;   // 0
 * ```
 * File descriptor 3 of the program is a file whose text comes back as `run.fd3` (a result
 * channel beside stdout).
 */

/** What one forked program did. */
export interface ForkedRun {
  readonly stdout: string;
  readonly stderr: string;
  /** What the program wrote to file descriptor 3. */
  readonly fd3: string;
  /** Its exit status, or null when a signal ended it. */
  readonly exitCode: number | null;
  /** The signal that ended it, if one did. */
  readonly signal: NodeJS.Signals | null;
}

/** Services whose models the server loads before the first fork (others load in the child). */
const WARM_SERVICES = ['ssm', 'ec2', 's3', 'sns', 'cloudwatch', 'lambda', 'sts', 'dynamodb', 'kms', 'sqs'];

const ZYGOTE = `
import json, os, select, signal, sys
import boto3, botocore.session

# Load the models once: a child's sessions use this loader (its cache is the models' JSON).
warm = botocore.session.get_session()
loader = warm.get_component('data_loader')
session = boto3.Session(botocore_session=warm, region_name='us-east-1', aws_access_key_id='warm',
                        aws_secret_access_key='warm')
for name in ${JSON.stringify(WARM_SERVICES)}:
    session.client(name)
del session
botocore.session.create_loader = lambda search_path_string=None: loader

wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda signum, frame: None)
running = {}

def say(message):
    os.write(1, (json.dumps(message) + '\\n').encode())

def child(req):
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(wake_r)
    os.close(wake_w)
    os.setsid()
    files = req['files']
    for fd, (path, flags) in enumerate([(files['stdin'], os.O_RDONLY),
                                        (files['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                        (files['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                        (files['fd3'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)]):
        opened = os.open(path, flags, 0o600)
        if opened != fd:
            os.dup2(opened, fd)
            os.close(opened)
    sys.stdin = open(0, 'r', closefd=False)
    sys.stdout = open(1, 'w', closefd=False)
    sys.stderr = open(2, 'w', closefd=False)
    os.environ.clear()
    os.environ.update(req['env'])
    os.chdir(req['cwd'])
    code = 0
    try:
        exec(compile(req['code'], '<python>', 'exec'), {'__name__': '__main__'})
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)

def reap():
    while running:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        rid = running.pop(pid, None)
        if rid is None:
            continue
        if os.WIFSIGNALED(status):
            say({'id': rid, 'exitCode': None, 'signal': os.WTERMSIG(status)})
        else:
            say({'id': rid, 'exitCode': os.WEXITSTATUS(status), 'signal': None})

pending = b''
say({'ready': True})
while True:
    try:
        ready = select.select([0, wake_r], [], [])[0]
    except InterruptedError:
        ready = []
    if wake_r in ready:
        try:
            os.read(wake_r, 4096)
        except BlockingIOError:
            pass
    reap()
    if 0 in ready:
        data = os.read(0, 1 << 20)
        if not data:
            break
        pending += data
        while b'\\n' in pending:
            line, pending = pending.split(b'\\n', 1)
            req = json.loads(line)
            pid = os.fork()
            if pid == 0:
                child(req)
            running[pid] = req['id']
            say({'id': req['id'], 'pid': pid})
`;

/** One program to run: its source, stdin, whole environment, working directory and abort signal. */
interface ForkRequest {
  readonly code: string;
  readonly input: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly signal?: AbortSignal;
}

interface Pending {
  readonly dir: string;
  pid?: number;
  readonly resolve: (run: ForkedRun) => void;
  readonly reject: (err: Error) => void;
}

class ForkServer {
  private readonly proc: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';
  private readonly ready: Promise<void>;
  private dead: Error | undefined;
  private stderr = '';
  /** Runs started and not yet settled (waiting for the server included). */
  private active = 0;

  constructor() {
    this.proc = spawn('python3', ['-c', ZYGOTE], { stdio: ['pipe', 'pipe', 'pipe'] });
    let markReady: () => void = () => undefined;
    let failReady: (err: Error) => void = () => undefined;
    this.ready = new Promise((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    this.proc.stderr?.on('data', (d: Buffer) => {
      if (this.stderr.length < 100_000) this.stderr += d.toString('utf8');
    });
    this.proc.stdout?.on('data', (d: Buffer) => {
      this.buffered += d.toString('utf8');
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const message = JSON.parse(line) as {
          ready?: boolean;
          id?: number;
          pid?: number;
          exitCode?: number | null;
          signal?: number | null;
        };
        if (message.ready === true) markReady();
        else if (message.id !== undefined) this.answer(message.id, message);
      }
    });
    const died = (why: string): void => {
      this.dead = new Error(
        `the Python fork server ${why}: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}`,
      );
      failReady(this.dead);
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(this.dead);
      }
    };
    this.proc.on('error', (err) => died(`could not start (${err.message})`));
    this.proc.on('exit', (code, sig) => died(`exited (${sig ?? code})`));
    this.idle();
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  async run(request: ForkRequest): Promise<ForkedRun> {
    this.active++;
    this.busy();
    try {
      await this.ready;
      if (this.dead !== undefined) throw this.dead;
      return await this.fork(request);
    } finally {
      this.active--;
      this.idle();
    }
  }

  private async fork({ code, input, env, cwd, signal }: ForkRequest): Promise<ForkedRun> {
    const dir = mkdtempSync(join(tmpdir(), 'pyfork-'));
    const files = {
      stdin: join(dir, 'stdin'),
      stdout: join(dir, 'stdout'),
      stderr: join(dir, 'stderr'),
      fd3: join(dir, 'fd3'),
    };
    writeFileSync(files.stdin, input);
    const id = this.nextId++;
    const stringEnv = Object.fromEntries(
      Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
    );
    return await new Promise<ForkedRun>((resolve, reject) => {
      const kill = (): void => {
        const pid = this.pending.get(id)?.pid;
        if (pid === undefined) return;
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T): void => {
          signal?.removeEventListener('abort', kill);
          rmSync(dir, { recursive: true, force: true });
          this.idle();
          f(v);
        };
      this.pending.set(id, { dir, resolve: settle(resolve), reject: settle(reject) });
      signal?.addEventListener('abort', kill, { once: true });
      this.proc.stdin?.write(`${JSON.stringify({ id, code, env: stringEnv, cwd, files })}\n`);
    });
  }

  stop(): void {
    this.proc.kill('SIGKILL');
  }

  private answer(
    id: number,
    message: { pid?: number; exitCode?: number | null; signal?: number | null },
  ): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    if (message.pid !== undefined) {
      p.pid = message.pid;
      return;
    }
    this.pending.delete(id);
    const read = (name: string, limit: number): string => {
      try {
        return readFileSync(join(p.dir, name), 'utf8').slice(0, limit);
      } catch {
        return '';
      }
    };
    const sig = message.signal ?? null;
    p.resolve({
      stdout: read('stdout', 1_000_000),
      stderr: read('stderr', 1_000_000),
      fd3: read('fd3', 50_000_000),
      exitCode: message.exitCode ?? null,
      signal: sig === null ? null : (signalName(sig) ?? null),
    });
  }

  /** Keeps Node running while a program runs or waits for the server. */
  private busy(): void {
    this.proc.ref();
    (this.proc.stdout as unknown as { ref?: () => void }).ref?.();
  }

  /** Lets Node exit while no program runs (the server ends when its stdin closes). */
  private idle(): void {
    if (this.active > 0) return;
    this.proc.unref();
    (this.proc.stdout as unknown as { unref?: () => void }).unref?.();
    (this.proc.stderr as unknown as { unref?: () => void }).unref?.();
    (this.proc.stdin as unknown as { unref?: () => void }).unref?.();
  }
}

/** The signal's name (`os.constants.signals`, e.g. 9 → `SIGKILL`). */
function signalName(n: number): NodeJS.Signals | undefined {
  const entry = Object.entries(constants.signals).find(([, number]) => number === n);
  return entry?.[0] as NodeJS.Signals | undefined;
}

let server: ForkServer | undefined;

/**
 * Runs `code` as a Python program in a child of this process's fork server (started on first
 * use, again if it died), with `input` on its stdin, `env` as its whole environment and `cwd` as
 * its working directory. Aborting `signal` kills the child's process group with SIGKILL.
 */
export function runForked(
  code: string,
  input: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
  cwd: string = process.cwd(),
): Promise<ForkedRun> {
  if (server === undefined || !server.alive) server = new ForkServer();
  return server.run({ code, input, env, cwd, signal });
}

/** Ends this process's fork server, if one runs (a new one starts on the next {@link runForked}). */
export function stopForkServer(): void {
  server?.stop();
  server = undefined;
}
