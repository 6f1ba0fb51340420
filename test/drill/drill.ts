import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeAlarmsCommand, SetAlarmStateCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeTagsCommand } from '@aws-sdk/client-ec2';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { AutomationDocumentContent } from '../../lib/automation-document';
import type { CommandDocumentContent } from '../../lib/command-document';
import { loadConfig } from '../../lib/config';
import { StemeDbDiskStack } from '../../lib/stemedb-disk-stack';
import {
  type Authorize,
  type AutomationBackends,
  AutomationService,
  type CommandInvocationResult,
  type ExecutionRecord,
  type Principal,
} from '../support/automation-runner';
import { IamEvaluator } from '../support/iam-evaluator';
import { LoopDeviceLab } from '../support/loop-device';
import { type MotoServer, startMotoServer } from '../support/moto-server';
import { type ResolvedResource, ResolvedTemplate } from '../support/resolved-template';
import { freePort } from '../support/stemedb-standin';
import { LambdaHost } from './lambda-host';
import { CommandLedger, type CommandRecord, LocalSsmEndpoint } from './local-ssm';
import {
  accountTemplate,
  applyTemplateChanges,
  createAdministrator,
  createNodes,
  enableAuthorization,
  instanceRoleName,
  type MotoClients,
  motoClients,
  type NodeResources,
  OPERATOR_ROLE,
  type ProvisionedAccount,
  provisionFromTemplate,
  type ResourceChange,
  templateChanges,
} from './moto-account';
import { NodeHost } from './node-host';

/**
 * The drill: the synthesized stack, deployed into moto_server, healing a real (loop-device) disk
 * on this machine, every step made with the credentials of the principal AWS would use.
 *
 * `Drill.start()` synthesizes the app with a drill configuration (one node per scenario, the
 * data mount under a temp directory, the health URL on a free loopback port) exactly as `cdk
 * synth` does (cdk-nag included, Lambdas bundled by esbuild into `cdk.out`), creates the account
 * in moto from the resolved template (./moto-account.ts), starts the local SSM endpoint and the
 * Automation runner, and turns moto's request authorization on. `run(scenario)` then provisions
 * the node's disk and service, fires the scenario's alarm as EventBridge would (a real-shaped
 * "CloudWatch Alarm State Change" event into the bundled alarm-router), lets the documents run,
 * validates with `<prefix>-ValidateDiskHealth`, and returns the timeline. `redeploy(change)` is
 * `cdk deploy` of a changed configuration: it synthesizes again and applies the resources that
 * changed to moto (and serves the changed documents, functions and policies from then on).
 * `stop()` releases everything; so do SIGINT/SIGTERM and a failure half-way.
 *
 * Principals: the router runs as its role; Automation steps (their Python, executeAwsApi, and the
 * calls the service makes for them: SendCommand, InvokeFunction, StartAutomationExecution of a
 * child) as the automation role; each Lambda as its own role; host scripts as the node's instance
 * role (the node's managed policy from the template + the SSM agent's basics); manual starts as an
 * operator role. A call the evaluator denies fails its step with the principal, action and
 * resource in the message; moto rejects any action a principal was not granted.
 */

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const AZ = 'eu-west-1a';
export const PREFIX = 'StemeDB';
const STACK = `${PREFIX}-Disk`;

export type AlarmKind = 'critical' | 'warning' | 'emergency-space' | 'inode-warning' | 'emergency-inodes';

/** A node of the drill config: one per scenario, so scenarios never share moto state. */
export interface DrillNodeSpec {
  readonly name: string;
  readonly volumeGiB: number;
}

export interface StepLine {
  readonly execution: string;
  readonly document: string;
  readonly step: string;
  readonly action: string;
  readonly principal: string;
  readonly startMs: number;
  readonly durationMs: number;
  readonly status: string;
  readonly message?: string;
}

export interface DeniedCall {
  readonly principal: string;
  readonly action: string;
  readonly resources: readonly string[];
  readonly message: string;
}

export interface Notification {
  readonly subject: string;
  readonly message: string;
}

export interface TimelineEvent {
  readonly atMs: number;
  readonly what: string;
}

/** What a drill run leaves behind: everything the 3 a.m. reader would want to see. */
export interface DrillTimeline {
  readonly scenario: string;
  readonly node: string;
  readonly events: TimelineEvent[];
  readonly steps: StepLine[];
  readonly executions: Array<{
    id: string;
    document: string;
    status: string;
    parent?: string;
    failure?: string;
  }>;
  readonly notifications: Notification[];
  readonly denied: DeniedCall[];
  readonly routerDecisions: unknown[];
  /** Milliseconds spent in aws:sleep steps and scaled waits (excluded from ownMs). */
  sleptMs: number;
  totalMs: number;
  /** totalMs minus sleptMs: our own time from the alarm event to validated recovery. */
  ownMs: number;
  before?: { sizeBytes: number; availBytes: number; usedPercent: number; inodesFree: number };
  after?: { sizeBytes: number; availBytes: number; usedPercent: number; inodesFree: number };
  readonly checks: Array<{ name: string; ok: boolean; detail: string }>;
  /** Measured figures a scenario reports (e.g. a migration's downtime), by name. */
  readonly figures: Record<string, number | string>;
}

/** The drill's configuration (the `stemedbConfig` file it synthesizes with). */
export interface DrillConfig {
  readonly [key: string]: unknown;
  readonly expansion: { readonly maxSizeGiB: number };
  readonly nodes: ReadonlyArray<{
    readonly name: string;
    readonly instanceId: string;
    readonly availabilityZone: string;
    readonly existingVolumeId: string;
  }>;
}

/** What a {@link Drill.redeploy} changed, and how to go back. */
export interface Redeployment {
  readonly changes: readonly ResourceChange[];
  readonly synthMs: number;
  /**
   * Applies the deployment before this one again (no synth: its template is kept), as a deploy of
   * the previous configuration would: e.g. the adopted volume's tags are put on the old volume again.
   */
  restore(): Promise<void>;
}

export interface DrillOptions {
  readonly nodes: readonly DrillNodeSpec[];
  /** Real milliseconds per document millisecond for sleeps and the router's settle wait. @default 0.01 */
  readonly sleepScale?: number;
  /** Progress lines (stderr by default). */
  readonly log?: (line: string) => void;
  /** Keep the work directory (cdk.out, config) after stop, for inspection. @default false */
  readonly keep?: boolean;
}

/** One run of a document, for {@link Drill.runDocument}. */
export interface DocumentRun {
  readonly executionId: string;
  readonly record: ExecutionRecord;
}

export class Drill {
  readonly root: string;
  readonly dataMount: string;
  readonly walDir: string;
  readonly dbDir: string;
  readonly backupDir: string;
  readonly serviceName = 'stemedb-api';
  /** The StemeDB config.toml the documents may edit (the `configFile` of the drill's configuration). */
  readonly configFile: string;
  /** The fstab MigrateDataVolume may switch (the `fstabFile` of the drill's configuration), never /etc/fstab. */
  readonly fstabFile: string;
  readonly lab = new LoopDeviceLab('stemedb-drill-disk-');
  readonly ledger = new CommandLedger();
  readonly sleepScale: number;
  private readonly log: (line: string) => void;

  moto: MotoServer | undefined;
  admin!: MotoClients;
  resolved!: ResolvedTemplate;
  rawTemplate!: RawStackTemplate;
  /** The first synth's template: its metadata names each Lambda's bundle in `cdk.out`. */
  private bundledTemplate!: RawStackTemplate;
  /** The configuration deployed now. */
  deployedConfig!: DrillConfig;
  private deployments = 0;
  /** Told of every host command the agent ran (after it ended), e.g. to look at the disk then. */
  afterHostCommand: ((documentName: string, record: CommandRecord) => void) | undefined;
  account!: ProvisionedAccount;
  evaluator!: IamEvaluator;
  automation!: AutomationService;
  endpoint: LocalSsmEndpoint | undefined;
  lambdas!: LambdaHost;
  nodes: NodeResources[] = [];
  port = 0;
  cdkOut = '';
  operator!: Principal;
  private host: NodeHost | undefined;
  private current: DrillTimeline | undefined;
  private t0 = 0;
  private readonly keep: boolean;
  private readonly detachSignals: () => void;

  private constructor(opts: DrillOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'stemedb-drill-'));
    this.dataMount = join(this.root, 'data');
    this.walDir = join(this.dataMount, 'wal');
    this.dbDir = join(this.dataMount, 'db');
    this.backupDir = join(this.root, 'backups');
    this.configFile = join(this.root, 'etc-stemedb', 'config.toml');
    this.fstabFile = join(this.root, 'etc', 'fstab');
    this.sleepScale = opts.sleepScale ?? 0.01;
    this.log = opts.log ?? ((line) => process.stderr.write(`drill: ${line}\n`));
    this.keep = opts.keep ?? false;
    const onSignal = (signal: NodeJS.Signals): void => {
      this.log(`${signal}: cleaning up`);
      void this.stop().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    this.detachSignals = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
  }

  /** Checks what the drill needs of this machine; returns one line saying what is missing, or undefined. */
  static missingPrerequisite(): string | undefined {
    if (process.platform !== 'linux') return 'the drill needs Linux (loop devices, mounts)';
    if (typeof process.getuid === 'function' && process.getuid() !== 0)
      return 'the drill needs root (it attaches loop devices and mounts them): run it with sudo';
    try {
      readFileSync('/dev/loop-control');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT')
        return 'the drill needs loop devices (/dev/loop-control is missing: modprobe loop)';
    }
    return undefined;
  }

  static async start(opts: DrillOptions): Promise<Drill> {
    const drill = new Drill(opts);
    try {
      await drill.setUp(opts.nodes);
      return drill;
    } catch (err) {
      await drill.stop();
      throw err;
    }
  }

  private elapsed(): number {
    return performance.now() - this.t0;
  }

  mark(what: string): void {
    this.current?.events.push({ atMs: Math.round(this.elapsed()), what });
    this.log(what);
  }

  private async setUp(nodes: readonly DrillNodeSpec[]): Promise<void> {
    const t = performance.now();
    this.moto = await startMotoServer({ sigv4QueryFix: true });
    const bootstrap = motoClients(this.moto.endpoint, REGION, {
      accessKeyId: 'bootstrap',
      secretAccessKey: 'bootstrap',
    });
    const adminCredentials = await createAdministrator(bootstrap);
    this.admin = motoClients(this.moto.endpoint, REGION, adminCredentials);
    this.nodes = await createNodes(this.admin, AZ, nodes);
    this.port = await freePort();

    // Synthesize as `cdk synth` does, for this account's nodes.
    this.deployedConfig = {
      prefix: PREFIX,
      dataMount: this.dataMount,
      walDir: this.walDir,
      dbDir: this.dbDir,
      backupDir: this.backupDir,
      serviceName: this.serviceName,
      configFile: this.configFile,
      fstabFile: this.fstabFile,
      healthUrl: `http://127.0.0.1:${this.port}/v1/health`,
      expansion: { maxSizeGiB: 64 },
      nodes: this.nodes.map((n) => ({
        name: n.name,
        instanceId: n.instanceId,
        availabilityZone: n.availabilityZone,
        existingVolumeId: n.volumeId,
      })),
    };
    this.cdkOut = join(this.root, 'cdk.out');
    const template = this.synthesize(this.deployedConfig, this.cdkOut, true);
    this.rawTemplate = template;
    this.bundledTemplate = template;
    this.resolved = this.resolveTemplate(template);
    this.evaluator = new IamEvaluator(this.resolved);
    this.log(
      `synthesized ${STACK} for ${this.nodes.length} nodes in ${Math.round(performance.now() - t)} ms`,
    );

    this.account = await provisionFromTemplate(this.admin, this.resolved);
    this.operator = must(this.account.principals.get(OPERATOR_ROLE), 'the operator session');

    this.lambdas = new LambdaHost({
      cdkOut: this.cdkOut,
      region: REGION,
      motoEndpoint: this.moto.endpoint,
      ssmEndpoint: () => this.endpoint?.endpoint ?? '',
    });
    this.automation = new AutomationService(this.backends(), { log: (line) => this.log(line) });
    this.endpoint = new LocalSsmEndpoint({
      motoEndpoint: this.moto.endpoint,
      account: ACCOUNT,
      region: REGION,
      automation: this.automation,
      commands: this.ledger,
      principalOf: (key) =>
        [...this.account.principals.values()].find((p) => p.credentials.accessKeyId === key),
      authorize: (principal, action, resources, ctx) => this.authorize(principal, action, resources, ctx),
    });
    await this.endpoint.start();
    await enableAuthorization(this.moto.endpoint);
    this.log(`moto account ready (authorization on) in ${Math.round(performance.now() - t)} ms`);
  }

  /**
   * `cdk synth` of `config` into `outdir` (cdk-nag included). `bundle` false skips esbuild (the
   * Lambda code is the same, only the asset hashes differ): a re-deploy of a changed configuration
   * runs the bundles of the first synth.
   */
  private synthesize(config: DrillConfig, outdir: string, bundle: boolean): RawStackTemplate {
    const configFile = join(this.root, `drill-config-${this.deployments++}.json`);
    writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
    const cdkJson = JSON.parse(readFileSync(join(__dirname, '..', '..', 'cdk.json'), 'utf8')) as {
      context: Record<string, unknown>;
    };
    // As the CLI runs the app: asset metadata on (it names each Lambda's staged bundle in cdk.out).
    const context: Record<string, unknown> = {
      ...cdkJson.context,
      stemedbConfig: configFile,
      'aws:cdk:enable-asset-metadata': true,
      ...(bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
    };
    // As bin/app.ts: cfn-lint, not CDK's built-in validation, checks the templates.
    const app = new App({ outdir, context, builtinCloudFormationValidation: false });
    const resolvedConfig = loadConfig((key) => app.node.tryGetContext(key));
    new StemeDbDiskStack(app, STACK, { config: resolvedConfig });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    app.synth();
    return JSON.parse(readFileSync(join(outdir, `${STACK}.template.json`), 'utf8')) as RawStackTemplate;
  }

  private resolveTemplate(template: RawStackTemplate): ResolvedTemplate {
    return new ResolvedTemplate(
      accountTemplate(template as unknown as Record<string, unknown>, this.nodes, PREFIX),
      {
        account: ACCOUNT,
        region: REGION,
        stackName: STACK,
      },
    );
  }

  /**
   * `cdk deploy` of a changed configuration: synthesizes `change(deployedConfig)`, compares every
   * resource of the account template with the deployed one, and applies what changed to moto as
   * CloudFormation would (./moto-account.ts applyTemplateChanges: parameters, alarms, role
   * policies, the adopted volume's tags; a change it cannot apply fails the re-deploy). Documents,
   * functions and policies are served from the new template from then on. A node's
   * `existingVolumeId` becomes its `volumeId` in {@link nodes}.
   */
  async redeploy(change: (config: DrillConfig) => DrillConfig): Promise<Redeployment> {
    const t = performance.now();
    const before = {
      config: this.deployedConfig,
      raw: this.rawTemplate,
      resolved: this.resolved,
      nodes: this.nodes,
    };
    const config = change(structuredClone(this.deployedConfig));
    const raw = this.synthesize(config, join(this.root, `cdk.out-${this.deployments}`), false);
    const synthMs = Math.round(performance.now() - t);
    const nodes = this.nodes.map((n) => {
      const configured = config.nodes.find((c) => c.name === n.name);
      return configured === undefined ? n : { ...n, volumeId: configured.existingVolumeId };
    });
    const deploy = async (to: typeof before): Promise<ResourceChange[]> => {
      const changes = templateChanges(this.resolved, to.resolved);
      await applyTemplateChanges(this.admin, this.resolved, to.resolved, changes);
      this.nodes = to.nodes;
      this.resolved = to.resolved;
      this.rawTemplate = to.raw;
      this.deployedConfig = to.config;
      this.evaluator = new IamEvaluator(to.resolved);
      return changes;
    };
    const changes = await deploy({ config, raw, resolved: this.resolveTemplate(raw), nodes });
    return {
      changes,
      synthMs,
      restore: async () => {
        await deploy(before);
      },
    };
  }

  private principalByArn(arn: string): Principal | undefined {
    return [...this.account.principals.values()].find((p) => p.arn === arn);
  }

  /** The real IAM decision; a denial is recorded and thrown with principal, action and resource. */
  readonly authorize: Authorize = async (principal, action, resources, context) => {
    for (const resource of resources) {
      const decision = await this.evaluator.isAllowed({
        principalRoleArn: principal.arn,
        action,
        resource: { arn: resource, context: context as Record<string, string | string[]> | undefined },
      });
      if (!decision.allowed) {
        const message = `AccessDenied: ${principal.name} (${principal.arn}) is not authorized to perform ${action} on resource ${resource} (${decision.explanation})`;
        this.current?.denied.push({ principal: principal.name, action, resources: [resource], message });
        throw Object.assign(new Error(message), {
          name: 'AccessDeniedException',
          code: 'AccessDeniedException',
        });
      }
    }
  };

  private lambdaResource(functionName: string): ResolvedResource {
    const fn = this.resolved.resources('AWS::Lambda::Function').find((f) => f.ref === functionName);
    if (fn === undefined)
      throw Object.assign(new Error(`Function not found: ${functionName}`), {
        name: 'ResourceNotFoundException',
      });
    return fn;
  }

  /** Invokes a deployed Lambda (its bundle) with its own role. */
  async invokeFunction(functionName: string, payload: string) {
    const fn = this.lambdaResource(functionName);
    const roleName = must(this.account.functionRoles.get(functionName), `the role of ${functionName}`);
    const role = must(this.account.principals.get(roleName), `a session of ${roleName}`);
    const bundle = this.lambdas.bundleOf(fn, this.bundledTemplate.Resources?.[fn.logicalId]?.Metadata);
    // The router's settle wait (300 s after a remediation ends) is a sleep: scaled like the others.
    const extra: Record<string, string> =
      functionName === `${PREFIX}-alarm-router`
        ? { SETTLE_SECONDS: String(Math.ceil(300 * this.sleepScale)) }
        : {};
    return this.lambdas.invoke(fn, bundle, role, payload, extra);
  }

  private commandDocument(name: string): CommandDocumentContent | undefined {
    const doc = this.resolved
      .resources('AWS::SSM::Document')
      .find((d) => d.properties.Name === name && d.properties.DocumentType === 'Command');
    return doc?.properties.Content as CommandDocumentContent | undefined;
  }

  private async instanceTags(instanceId: string): Promise<Record<string, string>> {
    const out = await this.admin.ec2.send(
      new DescribeTagsCommand({ Filters: [{ Name: 'resource-id', Values: [instanceId] }] }),
    );
    return Object.fromEntries((out.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  }

  private backends(): AutomationBackends {
    const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;
    return {
      account: ACCOUNT,
      region: REGION,
      partition: 'aws',
      automationDocument: (name) => {
        const doc = this.resolved
          .resources('AWS::SSM::Document')
          .find((d) => d.properties.Name === name && d.properties.DocumentType === 'Automation');
        return doc?.properties.Content as AutomationDocumentContent | undefined;
      },
      assumeRole: async (roleArn) => {
        const p = this.principalByArn(roleArn);
        if (p === undefined)
          throw new Error(`AutomationAssumeRole ${roleArn} cannot be assumed: no such role in the account`);
        return p;
      },
      authorize: (principal, action, resources, context) =>
        this.authorize(principal, action, resources, context),
      invokeLambda: async (caller, request) => {
        await this.authorize(caller, 'lambda:InvokeFunction', [
          arn('lambda', `function:${request.functionName}`),
        ]);
        const started = this.elapsed();
        const out = await this.invokeFunction(request.functionName, request.payload);
        this.mark(
          `lambda ${request.functionName} as ${out.principal}: ${Math.round(out.durationMs)} ms${out.functionError ? ` (${out.functionError})` : ''}`,
        );
        void started;
        return out;
      },
      runCommand: async (caller, request) => {
        const content = this.commandDocument(request.documentName);
        const results: CommandInvocationResult[] = [];
        for (const instanceId of request.instanceIds) {
          const tags = await this.instanceTags(instanceId);
          const context = Object.fromEntries(
            Object.entries(tags).flatMap(([k, v]) => [
              [`ssm:resourceTag/${k}`, v],
              [`aws:ResourceTag/${k}`, v],
            ]),
          );
          await this.authorize(caller, 'ssm:SendCommand', [arn('ssm', `document/${request.documentName}`)]);
          await this.authorize(caller, 'ssm:SendCommand', [arn('ec2', `instance/${instanceId}`)], context);
          if (content === undefined)
            throw Object.assign(new Error(`InvalidDocument: ${request.documentName} does not exist`), {
              name: 'InvalidDocument',
            });
          const host = this.host;
          const node = this.nodes.find((n) => n.instanceId === instanceId);
          if (host === undefined || node === undefined)
            throw Object.assign(
              new Error(`InvalidInstanceId: ${instanceId} is not a managed instance of the drill`),
              {
                name: 'InvalidInstanceId',
              },
            );
          const parameters = Object.fromEntries(
            Object.entries(request.parameters).map(([k, v]) => [
              k,
              Array.isArray(v) ? v.join(',') : String(v),
            ]),
          );
          const record = this.ledger.add({
            instanceId,
            documentName: request.documentName,
            parameters: Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, [v]])),
            comment: request.comment ?? '',
            sentBy: caller.name,
          });
          for (const c of await host.followEbs()) {
            this.mark(
              c.kind === 'grown'
                ? `EBS: the disk of ${c.volumeId} (${c.device}) grew from ${c.fromGiB} to ${c.toGiB} GiB`
                : `EBS: ${c.volumeId} attached: a new ${c.sizeGiB} GiB disk ${c.device} with serial ${c.volumeId.replace('-', '')}`,
            );
          }
          const run = await host.runAsAgent(content, parameters, request.timeoutSeconds ?? 3600);
          record.endedAt = new Date();
          record.stdout = run.stdout;
          record.stderr = run.stderr;
          record.responseCode = run.exitCode;
          record.status = run.timedOut ? 'TimedOut' : run.exitCode === 0 ? 'Success' : 'Failed';
          this.afterHostCommand?.(request.documentName, record);
          await host.publishDiskMetrics();
          results.push({
            commandId: record.commandId,
            instanceId,
            status: record.status as CommandInvocationResult['status'],
            responseCode: run.exitCode,
            output: run.stdout,
            stderr: run.stderr,
            principal: host.instanceRoleName,
          });
        }
        return results;
      },
      awsEnv: (principal) => ({
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        AWS_ACCESS_KEY_ID: principal.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: principal.credentials.secretAccessKey,
        AWS_SESSION_TOKEN: principal.credentials.sessionToken ?? '',
        AWS_REGION: REGION,
        AWS_DEFAULT_REGION: REGION,
        AWS_ENDPOINT_URL: this.moto?.endpoint ?? '',
        AWS_ENDPOINT_URL_SSM: this.endpoint?.endpoint ?? '',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      }),
      scaleSleepMs: (ms) => {
        const real = ms * this.sleepScale;
        if (this.current !== undefined) this.current.sleptMs += real;
        return real;
      },
    };
  }

  /** Provisions the node's disk and service for a scenario; `release` undoes it. */
  async openNode(name: string, disk: Parameters<NodeHost['provision']>[0]): Promise<NodeHost> {
    const node = must(
      this.nodes.find((n) => n.name === name),
      `drill node ${name}`,
    );
    const instanceRole = must(
      this.account.principals.get(instanceRoleName(name)),
      `the instance role of ${name}`,
    );
    const asInstance = motoClients(must(this.moto, 'moto').endpoint, REGION, instanceRole.credentials);
    const host = new NodeHost({
      lab: this.lab,
      dataMount: this.dataMount,
      walDir: this.walDir,
      dbDir: this.dbDir,
      backupDir: this.backupDir,
      serviceName: this.serviceName,
      port: this.port,
      instanceId: node.instanceId,
      volumeId: node.volumeId,
      instanceRole,
      instanceRoleName: instanceRole.name,
      motoEndpoint: must(this.moto, 'moto').endpoint,
      region: REGION,
      admin: this.admin,
      asInstance,
    });
    await host.provision(disk);
    this.host = host;
    return host;
  }

  async closeNode(): Promise<void> {
    const host = this.host;
    this.host = undefined;
    await host?.release();
    // A fresh disk per scenario: detach what the last one used.
    this.lab.cleanup();
  }

  /** Starts a timeline; every step, denial and mark goes into it until {@link finish}. */
  begin(scenario: string, node: string): DrillTimeline {
    this.t0 = performance.now();
    this.current = {
      scenario,
      node,
      events: [],
      steps: [],
      executions: [],
      notifications: [],
      denied: [],
      routerDecisions: [],
      sleptMs: 0,
      totalMs: 0,
      ownMs: 0,
      checks: [],
      figures: {},
    };
    return this.current;
  }

  /** Sets the alarm to ALARM in moto (as CloudWatch would) and returns the EventBridge event it emits. */
  async fireAlarm(node: string, kind: AlarmKind): Promise<Record<string, unknown>> {
    const alarmName = `${PREFIX}-${node}-disk-${kind}`;
    await this.admin.cloudwatch.send(
      new SetAlarmStateCommand({
        AlarmName: alarmName,
        StateValue: 'ALARM',
        StateReason: 'Threshold Crossed (drill)',
      }),
    );
    const described = await this.admin.cloudwatch.send(
      new DescribeAlarmsCommand({ AlarmNames: [alarmName] }),
    );
    const alarm = must(described.MetricAlarms?.[0], `alarm ${alarmName} in moto`);
    const at = (alarm.StateTransitionedTimestamp ?? alarm.StateUpdatedTimestamp ?? new Date()).toISOString();
    const stamp = `${at.slice(0, 23)}+0000`;
    return {
      version: '0',
      id: crypto.randomUUID(),
      'detail-type': 'CloudWatch Alarm State Change',
      source: 'aws.cloudwatch',
      account: ACCOUNT,
      time: `${at.slice(0, 19)}Z`,
      region: REGION,
      resources: [alarm.AlarmArn],
      detail: {
        alarmName,
        state: { value: 'ALARM', reason: 'Threshold Crossed (drill)', timestamp: stamp },
        previousState: { value: 'OK', reason: 'Threshold Crossed', timestamp: stamp },
        configuration: { description: alarm.AlarmDescription ?? '' },
      },
    };
  }

  /** Returns the alarm to OK in moto. */
  async resetAlarm(node: string, kind: AlarmKind): Promise<void> {
    await this.admin.cloudwatch.send(
      new SetAlarmStateCommand({
        AlarmName: `${PREFIX}-${node}-disk-${kind}`,
        StateValue: 'OK',
        StateReason: 'Threshold no longer crossed (drill)',
      }),
    );
  }

  /** Sends an event to the deployed router (its bundle, its role); returns its outcomes. */
  async route(event: Record<string, unknown>): Promise<unknown[]> {
    const out = await this.invokeFunction(`${PREFIX}-alarm-router`, JSON.stringify(event));
    if (out.functionError !== undefined) throw new Error(`alarm-router failed: ${out.payload}`);
    const outcomes = (JSON.parse(out.payload) as { outcomes: unknown[] }).outcomes;
    this.current?.routerDecisions.push(...outcomes);
    this.mark(
      `alarm-router (${out.principal}, ${Math.round(out.durationMs)} ms): ${outcomes.map((o) => (o as { decision: string }).decision).join(', ')}`,
    );
    return outcomes;
  }

  /** Starts a document as an operator would from the console, and waits for it and its children. */
  async runDocument(name: string, parameters: Record<string, string>): Promise<DocumentRun> {
    const id = await this.automation.start(
      {
        DocumentName: `${PREFIX}-${name}`,
        Parameters: Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, [v]])),
      },
      this.operator,
    );
    const record = await this.automation.wait(id);
    await this.automation.idle();
    return { executionId: id, record };
  }

  /** Every notification the topic delivered since the last call (the SQS inbox, drained). */
  async drainNotifications(): Promise<Notification[]> {
    const out: Notification[] = [];
    for (;;) {
      const got = await this.admin.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.account.notificationQueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
        }),
      );
      const messages = got.Messages ?? [];
      if (messages.length === 0) break;
      for (const m of messages) {
        const body = JSON.parse(m.Body ?? '{}') as { Subject?: string; Message?: string };
        out.push({ subject: body.Subject ?? '', message: body.Message ?? '' });
        await this.admin.sqs.send(
          new DeleteMessageCommand({
            QueueUrl: this.account.notificationQueueUrl,
            ReceiptHandle: m.ReceiptHandle,
          }),
        );
      }
    }
    return out;
  }

  /** Ends the timeline: every execution since `begin`, its steps, the notifications. */
  async finish(): Promise<DrillTimeline> {
    const t = must(this.current, 'a timeline');
    await this.automation.idle();
    t.totalMs = Math.round(this.elapsed());
    t.sleptMs = Math.round(t.sleptMs);
    t.ownMs = t.totalMs - t.sleptMs;
    const since = performance.timeOrigin + this.t0;
    for (const e of this.automation.list().filter((x) => x.startedAt.getTime() >= since - 1000)) {
      t.executions.push({
        id: e.executionId,
        document: e.documentName,
        status: e.status,
        parent: e.parentExecutionId,
        failure: e.failureMessage,
      });
      for (const s of e.steps) {
        t.steps.push({
          execution: e.executionId,
          document: e.documentName,
          step: s.name,
          action: s.action,
          principal: s.principal ?? e.principal,
          startMs: Math.round(s.startedAt.getTime() - since),
          durationMs: Math.round(s.durationMs),
          status: s.status,
          message: s.failureMessage,
        });
      }
    }
    t.steps.sort((a, b) => a.startMs - b.startMs);
    t.notifications.push(...(await this.drainNotifications()));
    this.current = undefined;
    return t;
  }

  check(t: DrillTimeline, name: string, ok: boolean, detail: string): void {
    t.checks.push({ name, ok, detail });
    this.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
  }

  get activeHost(): NodeHost | undefined {
    return this.host;
  }

  async stop(): Promise<void> {
    this.detachSignals();
    const errors: string[] = [];
    const attempt = async (what: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    await attempt('node', () => this.host?.release());
    this.host = undefined;
    await attempt('loop devices', () => this.lab.cleanup());
    await attempt('ssm endpoint', () => this.endpoint?.stop());
    await attempt('moto', () => this.moto?.stop());
    if (!this.keep) await attempt('work dir', () => rmSync(this.root, { recursive: true, force: true }));
    if (errors.length > 0) throw new Error(`drill clean-up: ${errors.join('; ')}`);
  }
}

/** The synthesized template as JSON (what `cdk.out/<stack>.template.json` holds). */
export type RawStackTemplate = Record<
  string,
  Record<string, { Type: string; Properties?: Record<string, unknown>; Metadata?: Record<string, unknown> }>
>;

export function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`drill: ${what} is missing`);
  return value;
}
