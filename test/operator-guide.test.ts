import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sectionOfAutomation } from '../contracts/sections';
import type { AutomationDocumentContent } from '../lib/automation-document';
import { kebabCase } from '../lib/command-document';
import { CommandLedger, LocalSsmEndpoint } from './drill/local-ssm';
import { type AutomationBackends, AutomationService, type Principal } from './support/automation-runner';
import { IamEvaluator, REPO_ROOT, type RequestResource } from './support/iam-evaluator';
import { codeSpans, tableRows } from './support/markdown';
import { type ResolvedResource, ResolvedTemplate } from './support/resolved-template';
import { synthStack, TWO_NODES_FILE } from './support/synth';

/**
 * docs/operator-guide.md cannot drift from the code: every document, parameter, output, alarm
 * kind, Lambda, script and router decision it names is checked against the synthesized two-node
 * stack, the section registry and the router's routing policy; the runbook map and the parameter
 * and output lists are compared with the documents' own; the cost table's arithmetic and the
 * counts it rests on are recomputed from the template; and every `aws` command in its bash blocks is run with the real
 * AWS CLI: the `start-automation-execution` ones against the local SSM endpoint, where the
 * Automation runner validates the parameters as SSM does and the real IAM evaluator authorizes
 * the call as an operator holding only the stack's `<prefix>-operator` policy; every other one
 * against a closed port (the CLI validates its arguments before it connects) and through the IAM
 * evaluator for the request AWS would authorize.
 */

const GUIDE_FILE = join(REPO_ROOT, 'docs', 'operator-guide.md');
const GUIDE = readFileSync(GUIDE_FILE, 'utf8');
const TARGET = { account: '111122223333', region: 'eu-west-1', stackName: 'StemeDB-Disk' } as const;
const PREFIX = 'StemeDB';
const OPERATOR = `${PREFIX}-operator`;
const OPERATOR_KEY = 'AKIAOPERATOR0000TEST';
/** Values the guide's shell variables stand for when its commands are checked. */
const SHELL_VARIABLES: Readonly<Record<string, string>> = {
  ID: '0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b',
  POLICY_ARN: `arn:aws:iam::${TARGET.account}:policy/${OPERATOR}`,
};
/** Commands the guide gives the platform team (administrators), not operators. */
const PLATFORM_COMMANDS = new Set(['iam attach-role-policy']);

const run = promisify(execFile);

let raw: {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  Outputs: Record<string, { Value: unknown; Export?: { Name: string } }>;
};
let resolved: ResolvedTemplate;
let evaluator: IamEvaluator;
let service: AutomationService;
let endpoint: LocalSsmEndpoint;
let closedPort: number;

// --- Reading the guide -------------------------------------------------------------------------

/** The text of the `## title` section (up to the next `## ` heading). */
function section(title: string): string {
  const start = GUIDE.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`the guide has no section "## ${title}"`);
  const end = GUIDE.indexOf('\n## ', start + 4);
  return GUIDE.slice(start, end < 0 ? undefined : end);
}

/** The `### title` subsection of `text` (up to the next heading). */
function subsection(text: string, title: string): string {
  const start = text.indexOf(`\n### ${title}`);
  if (start < 0) throw new Error(`the guide has no subsection "### ${title}"`);
  const end = text.slice(start + 4).search(/\n##+ /);
  return end < 0 ? text.slice(start) : text.slice(start, start + 4 + end);
}

/** The commands of every ```bash block (continuations joined; `VAR=$(cmd)` gives `cmd`). */
function bashCommands(text: string): string[] {
  const blocks = [...text.matchAll(/^[ \t]*```bash\n([\s\S]*?)^[ \t]*```[ \t]*$/gm)].map(
    (m) => m[1] as string,
  );
  return blocks.flatMap((b) =>
    b
      .replace(/\\\n/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => /^[A-Z_]+=\$\((.*)\)$/.exec(l)?.[1] ?? l),
  );
}

/** Shell words of one command line: plain words, '…', "…" and $VAR / "$VAR" of SHELL_VARIABLES only. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  const variable = (name: string): string => {
    const v = SHELL_VARIABLES[name];
    if (v === undefined)
      throw new Error(`the guide uses the shell variable $${name}, unknown to this test: ${line}`);
    return v;
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      const end = line.indexOf('"', i + 1);
      if (end < 0) throw new Error(`unterminated " in: ${line}`);
      const inner = line.slice(i + 1, end);
      if (/[`\\]|\$\(/.test(inner)) throw new Error(`shell expansion this test does not model in: ${line}`);
      word = (word ?? '') + inner.replace(/\$([A-Z_]+)/g, (_, name: string) => variable(name));
      i = end;
    } else if (c === '$') {
      const m = /^\$([A-Z_]+)/.exec(line.slice(i));
      if (m === null) throw new Error(`shell expansion this test does not model in: ${line}`);
      word = (word ?? '') + variable(m[1] as string);
      i += (m[0] as string).length - 1;
    } else if ('`\\|;&<>(){}'.includes(c)) {
      throw new Error(`shell syntax this test does not model (${c}) in: ${line}`);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** `--name value…` options of an `aws` command (a flag has no values). */
function options(words: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const w of words) {
    if (w.startsWith('--')) {
      current = [];
      out.set(w.slice(2), current);
    } else if (current !== undefined) current.push(w);
  }
  return out;
}

function option(opts: Map<string, string[]>, name: string, command: string): string {
  const v = opts.get(name);
  if (v === undefined || v.length !== 1) throw new Error(`${command}: expected one value for --${name}`);
  return v[0] as string;
}

/** `--parameters K=V,K=V` as the CLI shorthand reads it (values may hold spaces, not commas). */
function shorthandParameters(text: string): Record<string, string> {
  return Object.fromEntries(
    text.split(',').map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 1) throw new Error(`--parameters ${text}: ${pair} is not Key=Value`);
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    }),
  );
}

interface AwsCommand {
  readonly line: string;
  readonly words: readonly string[];
  /** `ssm start-automation-execution` */
  readonly name: string;
  readonly opts: Map<string, string[]>;
}

function awsCommands(text: string = GUIDE): AwsCommand[] {
  return bashCommands(text)
    .filter((l) => l.startsWith('aws '))
    .map((line) => {
      const words = shellWords(line).slice(1);
      return { line, words, name: `${words[0]} ${words[1]}`, opts: options(words) };
    });
}

// --- The stack ---------------------------------------------------------------------------------

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the template has no ${what}`);
  return value;
}

function routerFunction(): ResolvedResource {
  return must(
    resolved
      .resources('AWS::Lambda::Function')
      .find((f) => f.properties.FunctionName === `${PREFIX}-alarm-router`),
    'alarm-router function',
  );
}

const arn = (service: string, resource: string, region: string = TARGET.region): string =>
  `arn:aws:${service}:${region}:${TARGET.account}:${resource}`;

function documentsOf(type: 'Automation' | 'Command'): ResolvedResource[] {
  return resolved.resources('AWS::SSM::Document').filter((d) => d.properties.DocumentType === type);
}

function contentOf(name: string): AutomationDocumentContent {
  const doc = documentsOf('Automation').find((d) => d.ref === name);
  if (doc === undefined)
    throw new Error(`the guide names ${name}, which is not an Automation document of the stack`);
  return doc.properties.Content as AutomationDocumentContent;
}

function stepTargets(name: string, action: string, input: string): string[] {
  return contentOf(name)
    .mainSteps.filter((s) => s.action === action)
    .map((s) => String((s.inputs as Record<string, unknown>)[input]));
}

function routes(): Record<string, string[]> {
  const env = (routerFunction().properties.Environment as { Variables: Record<string, string> }).Variables;
  return JSON.parse(env.ROUTES as string) as Record<string, string[]>;
}

/** Every physical name the stack defines that the guide may mention. */
function stackNames(): Set<string> {
  const names = new Set<string>([TARGET.stackName]);
  for (const output of Object.values(raw.Outputs))
    if (output.Export !== undefined) names.add(output.Export.Name);
  for (const r of resolved.resources()) {
    if (typeof r.ref === 'string' && r.ref.startsWith(`${PREFIX}-`)) names.add(r.ref);
    for (const key of [
      'RoleName',
      'ManagedPolicyName',
      'FunctionName',
      'TopicName',
      'AlarmName',
      'DashboardName',
    ])
      if (typeof r.properties[key] === 'string') names.add(r.properties[key] as string);
  }
  return names;
}

function templateParameter(name: string): ResolvedResource | undefined {
  return resolved.resources('AWS::SSM::Parameter').find((p) => p.ref === name);
}

// --- Running the CLI ---------------------------------------------------------------------------

function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
  return {
    ...env,
    AWS_ACCESS_KEY_ID: OPERATOR_KEY,
    AWS_SECRET_ACCESS_KEY: 'operator-secret',
    AWS_DEFAULT_REGION: TARGET.region,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_MAX_ATTEMPTS: '1',
    AWS_RETRY_MODE: 'standard',
    AWS_PAGER: '',
  };
}

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs AWS CLI commands (the words after `aws`) in one python3 process, each exactly as the `aws`
 * script runs it (`awscli.clidriver.main`, a fresh driver per command): the CLI's start-up cost
 * once instead of once per command. Asynchronous, so the local endpoint in this process serves.
 */
async function aws(commands: ReadonlyArray<readonly string[]>, endpointUrl: string): Promise<CliResult[]> {
  const script = [
    'import contextlib, io, json, sys',
    'import awscli.clidriver',
    'out = []',
    'for args in json.load(sys.stdin):',
    '    o, e = io.StringIO(), io.StringIO()',
    '    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):',
    '        try:',
    '            code = awscli.clidriver.create_clidriver().main(args)',
    '        except SystemExit as x:',
    '            code = x.code if isinstance(x.code, int) else 1',
    "    out.append({'code': code, 'stdout': o.getvalue(), 'stderr': e.getvalue()})",
    'print(json.dumps(out))',
  ].join('\n');
  const pending = run('python3', ['-c', script], {
    env: cliEnv(),
    timeout: 600_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  pending.child.stdin?.end(JSON.stringify(commands.map((w) => [...w, '--endpoint-url', endpointUrl])));
  const { stdout } = await pending;
  const results = JSON.parse(stdout) as CliResult[];
  expect(results).toHaveLength(commands.length);
  return results;
}

/** A port nothing listens on (bound, then closed). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** The operator's identity: the stack's operator policy alone (no AWS managed policy). */
const operatorPrincipal: Principal = {
  name: 'operator',
  arn: `arn:aws:iam::${TARGET.account}:role/StemeDBOnCall`,
  credentials: { accessKeyId: OPERATOR_KEY, secretAccessKey: 'operator-secret' },
};

async function authorizeOperator(
  action: string,
  resources: readonly string[],
  context?: Readonly<Record<string, string | readonly string[]>>,
): Promise<void> {
  await evaluator.assertAllowed({
    managedPolicy: OPERATOR,
    awsManagedPolicies: [],
    action,
    resource: resources.map((r) => ({
      arn: r,
      ...(context === undefined ? {} : { context: context as Record<string, string | string[]> }),
    })),
  });
}

/** The back end of the local Automation service: validation and authorization only, nothing runs. */
function backends(): AutomationBackends {
  return {
    account: TARGET.account,
    region: TARGET.region,
    partition: 'aws',
    automationDocument: (name) =>
      documentsOf('Automation').find((d) => d.ref === name)?.properties.Content as
        | AutomationDocumentContent
        | undefined,
    assumeRole: async () => {
      throw new Error('this test validates and authorizes starts; nothing runs');
    },
    authorize: async (principal, action, resources, context) => {
      if (principal.name !== operatorPrincipal.name)
        throw new Error(`unexpected principal ${principal.name}`);
      await authorizeOperator(action, resources, context);
    },
    invokeLambda: async () => {
      throw new Error('nothing runs');
    },
    runCommand: async () => {
      throw new Error('nothing runs');
    },
    awsEnv: () => ({}),
  };
}

beforeAll(async () => {
  const synthed = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')));
  raw = synthed.template.toJSON() as typeof raw;
  resolved = new ResolvedTemplate(raw, TARGET);
  evaluator = new IamEvaluator(resolved);
  service = new AutomationService(backends());
  closedPort = await freePort();
  endpoint = new LocalSsmEndpoint({
    motoEndpoint: `http://127.0.0.1:${closedPort}`,
    account: TARGET.account,
    region: TARGET.region,
    automation: service,
    commands: new CommandLedger(),
    principalOf: (key) => (key === OPERATOR_KEY ? operatorPrincipal : undefined),
    authorize: async (_principal, action, resources) => authorizeOperator(action, resources),
  });
  await endpoint.start();
}, 180_000);

afterAll(async () => {
  await service?.idle();
  await endpoint?.stop();
});

// --- The checks --------------------------------------------------------------------------------

describe('names in the guide', () => {
  it('names only documents, functions, alarms, policies and other resources the stack defines', () => {
    const names = stackNames();
    const mentioned = new Set<string>();
    for (const m of GUIDE.matchAll(/\bStemeDB-[A-Za-z0-9-]*[A-Za-z0-9]/g)) {
      const next = GUIDE[(m.index ?? 0) + m[0].length] ?? '';
      if (next === '-' || next === '<' || next === '*') continue; // a pattern: StemeDB-node-<name>, StemeDB-Host-*
      mentioned.add(m[0]);
    }
    expect(mentioned.size).toBeGreaterThan(30);
    expect([...mentioned].filter((n) => !names.has(n))).toEqual([]);
  });

  it('names every Automation document of the stack in the runbook map, once, with its alarm kinds, Lambdas, commands, scripts and children', () => {
    const rows = tableRows(section('Runbook map'), 'Runbook section');
    const chains = routes();
    const documents = rows.map((r) => codeSpans(r[1] as string)[0]);
    expect(documents.sort()).toEqual(
      documentsOf('Automation')
        .map((d) => d.ref)
        .sort(),
    );
    for (const row of rows) {
      const [, docCell, kindsCell, lambdasCell, commandsCell, startsCell] = row as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      const doc = codeSpans(docCell)[0] as string;
      expect(row[0], `${doc}: the section's title in the registry`).toBe(
        sectionOfAutomation(doc.slice(`${PREFIX}-`.length))?.title,
      );
      const kinds = kindsCell
        .split(',')
        .flatMap((part) => codeSpans(part).map((k) => [k, part.includes('(2nd)') ? 1 : 0] as const));
      const expectedKinds = Object.entries(chains)
        .filter(([, chain]) => chain.includes(doc))
        .map(([kind, chain]) => [kind, chain.indexOf(doc)] as const);
      expect(new Map(kinds), `${doc}: alarm kinds`).toEqual(new Map(expectedKinds));
      expect(codeSpans(lambdasCell).sort(), `${doc}: Lambdas`).toEqual(
        [...new Set(stepTargets(doc, 'aws:invokeLambdaFunction', 'FunctionName'))].sort(),
      );
      const commands = codeSpans(commandsCell).filter((t) => t.startsWith(`${PREFIX}-Host-`));
      expect(commands.sort(), `${doc}: Command documents`).toEqual(
        [...new Set(stepTargets(doc, 'aws:runCommand', 'DocumentName'))].sort(),
      );
      for (const command of commands) {
        const script = `${kebabCase(command.slice(`${PREFIX}-Host-`.length))}.sh`;
        expect(commandsCell, `${command} runs ${script}`).toContain(`\`${command}\` (\`${script}\`)`);
        expect(existsSync(join(REPO_ROOT, 'ssm-documents', 'scripts', script)), script).toBe(true);
      }
      expect(codeSpans(startsCell).sort(), `${doc}: children`).toEqual(
        [...new Set(stepTargets(doc, 'aws:executeAutomation', 'DocumentName'))].sort(),
      );
    }
  });

  it('lists each document’s parameters exactly (but AutomationAssumeRole, which every document has)', () => {
    const running = section('Running a section by hand');
    for (const doc of documentsOf('Automation')) {
      const text = subsection(running, `\`${doc.ref}\``);
      const line = /\nParameters: ([\s\S]*?)\.\n/.exec(text)?.[1];
      expect(line, `${doc.ref}: a "Parameters:" line`).toBeDefined();
      const params = Object.keys((doc.properties.Content as AutomationDocumentContent).parameters ?? {});
      expect(params, doc.ref).toContain('AutomationAssumeRole');
      expect(codeSpans(line as string).sort(), doc.ref).toEqual(
        params.filter((p) => p !== 'AutomationAssumeRole').sort(),
      );
    }
  });

  it('lists each document’s outputs exactly', () => {
    const rows = tableRows(section('Reading the results'), 'Document');
    expect(rows.map((r) => codeSpans(r[0] as string)[0]).sort()).toEqual(
      documentsOf('Automation')
        .map((d) => d.ref)
        .sort(),
    );
    for (const [docCell, outputsCell] of rows as Array<[string, string]>) {
      const doc = codeSpans(docCell)[0] as string;
      expect(codeSpans(outputsCell), doc).toEqual(contentOf(doc).outputs ?? []);
    }
  });

  it('lists every stack output with its export name and value, and nothing else', () => {
    const rows = tableRows(subsection(section('Deploying to an account'), 'Stack outputs'), 'Output');
    const listed = rows.map((r) => codeSpans(r[0] as string)[0]);
    expect(listed.sort()).toEqual(Object.keys(raw.Outputs).sort());
    for (const [nameCell, exportCell, valueCell] of rows as Array<[string, string, string]>) {
      const name = codeSpans(nameCell)[0] as string;
      const output = raw.Outputs[name];
      expect(codeSpans(exportCell)[0] ?? 'none', name).toBe(output?.Export?.Name ?? 'none');
      const value = resolved.resolve(output?.Value);
      const shown = codeSpans(valueCell);
      if (/^(Automation|Command)Document/.test(name)) expect(shown, name).toEqual([value]);
      else if (shown[0] !== undefined && !shown[0].includes('<'))
        expect(String(value), name).toContain(shown[0]);
    }
    const count = /(\d+) outputs with the default configuration/.exec(GUIDE)?.[1];
    expect(Number(count)).toBe(Object.keys(raw.Outputs).length);
    for (const m of GUIDE.matchAll(/OutputKey=='([A-Za-z0-9]+)'/g))
      expect(Object.keys(raw.Outputs), `OutputKey ${m[1]}`).toContain(m[1]);
  });

  it('names the router’s decisions as the router has them, every one', () => {
    const source = readFileSync(join(REPO_ROOT, 'lambda', 'shared', 'routing-policy.ts'), 'utf8');
    const union = /export type Decision =([^;]*);/.exec(source)?.[1] ?? '';
    const decisions = [...union.matchAll(/'([a-z-]+)'/g)].map((m) => m[1] as string);
    expect(decisions.length).toBeGreaterThan(10);
    const paragraph =
      /\n {2}Decisions: ([\s\S]*?)(?:\n\n|\n?$)/.exec(section('Reading the results'))?.[1] ?? '';
    expect(codeSpans(paragraph).sort()).toEqual([...decisions].sort());
    for (const m of GUIDE.matchAll(/\$\.decision = "([a-z-]+)"/g)) expect(decisions).toContain(m[1]);
    for (const m of section('Troubleshooting').matchAll(/\(`([a-z-]+)`/g)) expect(decisions).toContain(m[1]);
  });
});

describe('the README', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const outputsSection = (): string => {
    const start = readme.indexOf('\n## Stack outputs and the operator policy\n');
    expect(start, 'README section "Stack outputs and the operator policy"').toBeGreaterThan(0);
    return readme.slice(start, readme.indexOf('\n## ', start + 4));
  };

  it('links the guide and lists the stack outputs (documents by pattern), each matching an output of the template', () => {
    expect(readme).toContain('](docs/operator-guide.md)');
    const rows = tableRows(outputsSection(), 'Output');
    const patterns = rows.map((r) => {
      const name = codeSpans(r[0] as string)[0] as string;
      return {
        name,
        re: new RegExp(`^${name.replace('<Name>', '[A-Z][A-Za-z0-9]*')}$`),
        exported: r[1] === 'yes',
      };
    });
    for (const [output, { Export }] of Object.entries(raw.Outputs)) {
      const matching = patterns.filter((p) => p.re.test(output));
      expect(
        matching.map((p) => p.name),
        output,
      ).toHaveLength(1);
      expect(matching[0]?.exported, `${output} exported`).toBe(Export !== undefined);
    }
    for (const p of patterns)
      expect(
        Object.keys(raw.Outputs).some((o) => p.re.test(o)),
        p.name,
      ).toBe(true);
    const count = /\((\d+) outputs in all/.exec(outputsSection())?.[1];
    expect(Number(count)).toBe(Object.keys(raw.Outputs).length);
  });

  it('gives only aws commands the guide gives too (which the checks below run)', () => {
    const inGuide = new Set(awsCommands().map((c) => c.line));
    const inReadme = awsCommands(outputsSection()).map((c) => c.line);
    expect(inReadme.length).toBeGreaterThan(0);
    for (const line of inReadme) expect(inGuide, line).toContain(line);
  });
});

describe('the CLI examples', () => {
  it('start every Automation document of the stack, with a dry run before the real run where the document has DryRun', () => {
    const starts = awsCommands().filter((c) => c.name === 'ssm start-automation-execution');
    for (const doc of documentsOf('Automation')) {
      const mine = starts.filter((c) => option(c.opts, 'document-name', c.line) === doc.ref);
      expect(mine.length, `${doc.ref}: an example`).toBeGreaterThan(0);
      const hasDryRun = Object.hasOwn(
        (doc.properties.Content as AutomationDocumentContent).parameters ?? {},
        'DryRun',
      );
      if (!hasDryRun) continue;
      const dry = mine.map((c) => shorthandParameters(option(c.opts, 'parameters', c.line)).DryRun);
      expect(dry[0], `${doc.ref}: the first example is a dry run`).toBe('true');
      expect(dry, `${doc.ref}: every example says DryRun`).not.toContain(undefined);
    }
  });

  it('are accepted by SSM and allowed for an operator: the real AWS CLI against the local Automation runner', async () => {
    const starts = awsCommands().filter((c) => c.name === 'ssm start-automation-execution');
    expect(starts.length).toBeGreaterThanOrEqual(documentsOf('Automation').length);
    const results = await aws(
      starts.map((c) => c.words),
      endpoint.endpoint,
    );
    for (const [i, c] of starts.entries()) {
      const out = results[i] as CliResult;
      expect(out.code, `${c.line}\n${out.stderr}`).toBe(0);
      const id = /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/.exec(out.stdout)?.[1];
      const record = service.get(id ?? '');
      expect(record?.documentName, c.line).toBe(option(c.opts, 'document-name', c.line));
      for (const [key, value] of Object.entries(shorthandParameters(option(c.opts, 'parameters', c.line))))
        expect(record?.parameters[key], `${c.line}: ${key}`).toEqual([value]);
    }
  }, 300_000);

  it('refuse, through the same path, a parameter that is not the document’s, a value its pattern refuses, and another deployment’s document', async () => {
    const cases = [
      [
        'StemeDB-ExpandVolume',
        'InstanceId=i-0123456789abcdef0,Dryrun=true',
        /InvalidAutomationExecutionParameters/,
      ],
      [
        'StemeDB-ExpandVolume',
        'InstanceId=i-0123456789abcdef0,Reason=rm -rf /',
        /InvalidAutomationExecutionParameters/,
      ],
      [
        'StemeDB-ExpandVolume',
        'InstanceId=i-0123456789abcdef0,MountPoint=/etc',
        /InvalidAutomationExecutionParameters/,
      ],
      ['Other-ExpandVolume', 'InstanceId=i-0123456789abcdef0', /AccessDenied/],
    ] as const;
    const results = await aws(
      cases.map(([document, parameters]) => [
        'ssm',
        'start-automation-execution',
        '--document-name',
        document,
        '--parameters',
        parameters,
      ]),
      endpoint.endpoint,
    );
    for (const [i, [, parameters, error]] of cases.entries()) {
      const out = results[i] as CliResult;
      expect(out.code, parameters).not.toBe(0);
      expect(out.stderr, parameters).toMatch(error);
    }
  }, 120_000);

  it('every other aws command parses with the real AWS CLI and is allowed for an operator (or is the platform team’s)', async () => {
    const others = awsCommands().filter((c) => c.name !== 'ssm start-automation-execution');
    expect(others.length).toBeGreaterThan(10);
    const checked: string[] = [];
    const results = await aws(
      others.map((c) => c.words),
      `http://127.0.0.1:${closedPort}`,
    );
    for (const [i, c] of others.entries()) {
      const out = results[i] as CliResult;
      // The CLI checks every argument before it connects: only the connection may fail.
      expect(out.stderr, c.line).toMatch(/Could not connect to the endpoint URL/);
      if (PLATFORM_COMMANDS.has(c.name)) {
        expect(option(c.opts, 'policy-arn', c.line)).toBe(SHELL_VARIABLES.POLICY_ARN);
        continue;
      }
      for (const request of operatorRequests(c)) {
        const d = await evaluator.isAllowed({ managedPolicy: OPERATOR, awsManagedPolicies: [], ...request });
        expect(d.allowed, `${c.line}: ${d.explanation}`).toBe(true);
      }
      checked.push(c.name);
    }
    expect(new Set(checked)).toEqual(
      new Set([
        'ssm get-automation-execution',
        'ssm describe-automation-step-executions',
        'ssm describe-automation-executions',
        'ssm stop-automation-execution',
        'ssm list-command-invocations',
        'ssm put-parameter',
        'ssm get-parameter',
        'logs filter-log-events',
        'cloudwatch describe-alarms',
        'cloudwatch describe-alarm-history',
        'cloudformation describe-stacks',
      ]),
    );
  }, 300_000);

  it('flip the kill switch with every value its parameter accepts, and only those', () => {
    const puts = awsCommands().filter((c) => c.name === 'ssm put-parameter');
    const values = puts.map((c) => option(c.opts, 'value', c.line));
    for (const c of puts) expect(option(c.opts, 'name', c.line)).toBe(`/${PREFIX}/automation-mode`);
    const pattern = new RegExp(
      String(templateParameter(`/${PREFIX}/automation-mode`)?.properties.AllowedPattern),
    );
    expect(values.sort()).toEqual(['act', 'observe', 'off']);
    for (const v of values) expect(pattern.test(v), v).toBe(true);
    expect(pattern.test('on')).toBe(false);
  });
});

/** The request AWS authorizes for an operator command of the guide; throws for a command it has no rule for. */
function operatorRequests(c: AwsCommand): Array<{ action: string; resource: RequestResource | string }> {
  const one = (name: string) => option(c.opts, name, c.line);
  const execution = () => ({ arn: arn('ssm', `automation-execution/${one('automation-execution-id')}`) });
  const alarm = (name: string) => {
    expect(stackNames(), `${c.line}: alarm ${name}`).toContain(name);
    return { arn: arn('cloudwatch', `alarm:${name}`) };
  };
  switch (c.name) {
    case 'ssm get-automation-execution':
      return [{ action: 'ssm:GetAutomationExecution', resource: execution() }];
    case 'ssm describe-automation-step-executions':
      return [{ action: 'ssm:DescribeAutomationStepExecutions', resource: execution() }];
    case 'ssm stop-automation-execution':
      return [{ action: 'ssm:StopAutomationExecution', resource: execution() }];
    case 'ssm describe-automation-executions':
      return [{ action: 'ssm:DescribeAutomationExecutions', resource: '*' }];
    case 'ssm list-command-invocations':
      return [{ action: 'ssm:ListCommandInvocations', resource: '*' }];
    case 'ssm get-parameter':
    case 'ssm put-parameter': {
      const name = one('name');
      const parameter = templateParameter(name);
      expect(parameter, `${c.line}: parameter ${name} of the stack`).toBeDefined();
      if (c.name === 'ssm get-parameter')
        return [{ action: 'ssm:GetParameter', resource: arn('ssm', `parameter${name}`) }];
      const pattern = parameter?.properties.AllowedPattern;
      if (typeof pattern === 'string') expect(one('value'), c.line).toMatch(new RegExp(pattern));
      return [
        {
          action: 'ssm:PutParameter',
          resource: {
            arn: arn('ssm', `parameter${name}`),
            context: c.opts.has('overwrite') ? { 'ssm:Overwrite': 'true' } : {},
          },
        },
      ];
    }
    case 'cloudwatch describe-alarms': {
      const names = c.opts.get('alarm-names') ?? [];
      expect(names.length, c.line).toBeGreaterThan(0);
      return names.map((n) => ({ action: 'cloudwatch:DescribeAlarms', resource: alarm(n) }));
    }
    case 'cloudwatch describe-alarm-history':
      return [{ action: 'cloudwatch:DescribeAlarmHistory', resource: alarm(one('alarm-name')) }];
    case 'logs filter-log-events': {
      const group = one('log-group-name');
      expect(
        resolved.resources('AWS::Logs::LogGroup').map((g) => g.ref),
        c.line,
      ).toContain(group);
      // Both forms AWS names (see test/operator-policy.test.ts).
      return [
        { action: 'logs:FilterLogEvents', resource: arn('logs', `log-group:${group}`) },
        { action: 'logs:FilterLogEvents', resource: arn('logs', `log-group:${group}:log-stream:`) },
      ];
    }
    case 'cloudformation describe-stacks':
      expect(one('stack-name'), c.line).toBe(TARGET.stackName);
      return [
        {
          action: 'cloudformation:DescribeStacks',
          resource: arn('cloudformation', `stack/${TARGET.stackName}/5e6f7a80-1b2c-11ef-9a3b-0a1b2c3d4e5f`),
        },
      ];
    default:
      throw new Error(`${c.line}: no rule for ${c.name}; add the request AWS authorizes to operatorRequests`);
  }
}

describe('the cost estimate', () => {
  const cost = () => section('Cost per node per month');
  /** The section with every run of white space as one space (prose wraps anywhere). */
  const flat = () => cost().replace(/\s+/g, ' ');
  const dollars = (cell: string): number =>
    Number(/\$([0-9][0-9,]*(?:\.[0-9]+)?)/.exec(cell)?.[1]?.replace(/,/g, ''));
  const quantity = (cell: string): number =>
    Number(/([0-9][0-9,]*(?:\.[0-9]+)?)/.exec(cell)?.[1]?.replace(/,/g, ''));

  it('adds up: quantity times price per row, and the totals', () => {
    const tables = cost()
      .split(/\n\| Item \|/)
      .slice(1);
    expect(tables).toHaveLength(2);
    for (const table of tables) {
      const rows = tableRows(`| Item |${table}`, 'Item');
      let sum = 0;
      for (const [item, qty, price, monthly] of rows as Array<[string, string, string, string]>) {
        if (item.startsWith('**Total')) {
          expect(dollars(monthly), item).toBeCloseTo(sum, 2);
          continue;
        }
        expect(quantity(qty) * dollars(price), item).toBeCloseTo(dollars(monthly), 2);
        sum += dollars(monthly);
      }
    }
    const withoutVolume = /the automation costs the example node \$([0-9.]+) a month/.exec(cost())?.[1];
    const total = /\*\*Total for the example node, first month\*\* \| \| \| \*\*\$([0-9.]+)\*\*/.exec(
      cost(),
    )?.[1];
    const volume = /\| Data volume \(gp3\)[^|]*\| [^|]* \| [^|]* \| \$([0-9.]+) \|/.exec(cost())?.[1];
    expect(Number(withoutVolume)).toBeCloseTo(Number(total) - Number(volume), 2);
  });

  it('counts what the stack deploys per node: alarms, alarm metrics, the agent’s custom metrics', () => {
    const db1 = 'i-0123456789abcdef0';
    const alarms = resolved
      .resources('AWS::CloudWatch::Alarm')
      .filter((a) => JSON.stringify(a.properties).includes(db1));
    const metricsOf = (a: ResolvedResource): number => {
      const metrics = a.properties.Metrics as Array<{ MetricStat?: unknown }> | undefined;
      return metrics === undefined ? 1 : metrics.filter((m) => m.MetricStat !== undefined).length;
    };
    const alarmMetrics = alarms.reduce((n, a) => n + metricsOf(a), 0);
    const twoMetric = alarms.filter((a) => metricsOf(a) === 2).length;
    expect(flat()).toContain(
      `${alarms.length} alarms, ${twoMetric} of them on 2 metrics (metric math) | ${alarmMetrics} alarm metrics |`,
    );
    const agentConfig = templateParameter(`AmazonCloudWatch-${PREFIX}-disk-db-1`);
    const config = JSON.parse(String(agentConfig?.properties.Value)) as {
      metrics: { aggregation_dimensions: unknown[]; metrics_collected: { disk: { measurement: string[] } } };
    };
    const measurements = config.metrics.metrics_collected.disk.measurement.length;
    const sets = 1 + config.metrics.aggregation_dimensions.length;
    expect(flat()).toContain(
      `(${measurements} measurements, ${sets} dimension sets) | ${measurements * sets} metrics |`,
    );
  });

  it('counts what the stack shares: automation alarms, key, dashboard, snapshots kept, the re-check schedule and the archive tiering', () => {
    const perNode = new Set(['i-0123456789abcdef0', 'i-0fedcba9876543210']);
    const shared = resolved
      .resources('AWS::CloudWatch::Alarm')
      .filter((a) => ![...perNode].some((i) => JSON.stringify(a.properties).includes(i)));
    expect(flat()).toContain(`| Alarms on the automation itself | ${shared.length} alarm metrics |`);
    expect(resolved.resources('AWS::KMS::Key')).toHaveLength(1);
    expect(resolved.resources('AWS::CloudWatch::Dashboard')).toHaveLength(1);
    const dlm = must(resolved.resources('AWS::DLM::LifecyclePolicy')[0], 'DLM policy');
    const retain = (dlm.properties.PolicyDetails as { Schedules: Array<{ RetainRule: { Count: number } }> })
      .Schedules[0]?.RetainRule.Count;
    expect(flat()).toContain(`Daily snapshots (DLM, ${retain} kept`);
    const recheck = resolved
      .resources('AWS::Events::Rule')
      .map((r) => r.properties.ScheduleExpression)
      .find((e) => typeof e === 'string');
    const minutes = Number(/^rate\((\d+) minutes\)$/.exec(String(recheck))?.[1]);
    const router = routerFunction();
    expect(flat()).toContain(
      `Router re-checks, ${router.properties.MemorySize} MB ${(router.properties.Architectures as string[])[0]}, about 1 s each (every ${minutes} minutes) | ${(31 * 24 * 60) / minutes} invocations |`,
    );
    const bucket = must(
      resolved
        .resources('AWS::S3::Bucket')
        .find((b) => JSON.stringify(b.properties.BucketEncryption ?? '').includes('aws:kms')),
      'WAL archive bucket',
    );
    const transition = (
      bucket.properties.LifecycleConfiguration as {
        Rules: Array<{ Transitions?: Array<{ StorageClass: string; TransitionInDays: number }> }>;
      }
    ).Rules.flatMap((r) => r.Transitions ?? [])[0];
    expect(transition).toEqual({ StorageClass: 'GLACIER_IR', TransitionInDays: 30 });
    expect(flat()).toContain("after 30 days a month's segments move to S3 Glacier Instant Retrieval");
  });

  it('assumes no more steps per run than the documents have', () => {
    const steps = (name: string) => contentOf(name).mainSteps.length;
    const m = /(\d+) ArchiveWal runs of (\d+) steps, (\d+) ExpandVolume of (\d+) \| (\d+) steps/.exec(cost());
    expect(m).not.toBeNull();
    const [, archiveRuns, archiveSteps, expandRuns, expandSteps, total] = (m as RegExpExecArray).map(Number);
    expect(archiveSteps).toBeLessThanOrEqual(steps(`${PREFIX}-ArchiveWal`));
    expect(expandSteps).toBeLessThanOrEqual(steps(`${PREFIX}-ExpandVolume`));
    expect(total).toBe(
      (archiveRuns as number) * (archiveSteps as number) + (expandRuns as number) * (expandSteps as number),
    );
  });
});

describe('the architecture', () => {
  it('is a Mermaid flowchart from the alarms and Prometheus through the router and the documents to the notifications', () => {
    const mermaid = /```mermaid\n([\s\S]*?)```/.exec(section('Architecture'))?.[1] ?? '';
    expect(mermaid).toMatch(/^flowchart /);
    for (const part of [
      'CloudWatch alarms',
      'Prometheus',
      'Alertmanager',
      'alarm-router',
      'Automation documents',
      'Command documents',
      'SNS topic',
      'Execution history',
      'Dashboard',
    ])
      expect(mermaid, part).toContain(part);
    const lambdas = resolved
      .resources('AWS::Lambda::Function')
      .map((f) => String(f.properties.FunctionName))
      .filter((n) => n.startsWith(`${PREFIX}-`) && n !== `${PREFIX}-alarm-router`)
      .map((n) => n.slice(PREFIX.length + 1));
    for (const l of lambdas) expect(mermaid, l).toContain(l);
  });
});
