import { createHash } from 'node:crypto';

/**
 * A synthesized CloudFormation template resolved for one concrete deploy target, the way
 * CloudFormation would resolve it: physical names, `Ref`/`Fn::GetAtt` per resource type, the
 * string intrinsics and pseudo parameters. The permission check and the drill read the IAM roles,
 * managed policies and resource policies from here, so what they evaluate is what the account
 * would hold.
 *
 * Ref and GetAtt return values follow the CloudFormation resource reference ("Return values" of
 * each type): SNS topic Ref = ARN; S3 bucket Ref = name; KMS key Ref = key ID; SQS queue Ref = URL;
 * IAM managed policy Ref = ARN; IAM role, Lambda function, SSM document and parameter, log group,
 * alarm, events rule and dashboard Ref = name; EC2 volume Ref = volume ID. A log group's `Arn`
 * ends in `:*`, as CloudFormation returns it.
 */

export interface DeployTarget {
  readonly account: string;
  readonly region: string;
  /** @default 'aws' */
  readonly partition?: string;
  readonly stackName: string;
}

export interface ResolvedResource {
  readonly logicalId: string;
  readonly type: string;
  /** Properties with every intrinsic resolved (`AWS::NoValue` removed). */
  readonly properties: Record<string, unknown>;
  /** What `Ref` returns. */
  readonly ref: string;
  /** The `Fn::GetAtt` attributes the template uses, plus `Arn` where the type has one. */
  readonly attributes: Record<string, string>;
}

export interface ResolvedRole {
  readonly logicalId: string;
  readonly roleName: string;
  readonly arn: string;
  readonly trustPolicy: object;
  /** Inline policies, `AWS::IAM::Policy` and customer managed policies of this template attached to the role. */
  readonly policies: Array<{ name: string; document: object }>;
  /** `arn:<partition>:iam::aws:policy/…` ARNs attached to the role. */
  readonly awsManagedPolicyArns: string[];
  /** Customer managed policy ARNs attached to the role that this template does not define. */
  readonly externalManagedPolicyArns: string[];
}

export interface ResolvedManagedPolicy {
  readonly logicalId: string;
  readonly name: string;
  readonly arn: string;
  readonly document: object;
}

export interface ResolvedResourcePolicy {
  readonly resourceArn: string;
  readonly kind: 'bucket' | 'topic' | 'key' | 'queue';
  /** Bucket name, topic name, key ID or queue name. */
  readonly resourceName: string;
  readonly logicalId: string;
  readonly document: object;
}

interface RawResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Condition?: string;
}

interface RawTemplate {
  readonly Resources?: Record<string, RawResource>;
  readonly Parameters?: Record<string, { Default?: unknown }>;
  readonly Conditions?: Record<string, unknown>;
  readonly Mappings?: Record<string, Record<string, Record<string, unknown>>>;
}

/** Marker for `Ref: AWS::NoValue`: the property or list element is removed. */
const NO_VALUE = Symbol('AWS::NoValue');

/** The property that names a resource explicitly, per type; a generated name is used otherwise. */
const NAME_PROPERTY: Readonly<Record<string, string>> = {
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::SSM::Document': 'Name',
  'AWS::SSM::Parameter': 'Name',
  'AWS::SQS::Queue': 'QueueName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::CloudWatch::Alarm': 'AlarmName',
  'AWS::Events::Rule': 'Name',
  'AWS::CloudWatch::Dashboard': 'DashboardName',
  'AWS::KMS::Alias': 'AliasName',
};

/** Longest physical name a generated one may have, and whether it must be lower case. */
const NAME_RULES: Readonly<Record<string, { max: number; lower?: boolean }>> = {
  'AWS::S3::Bucket': { max: 63, lower: true },
  'AWS::IAM::Role': { max: 64 },
  'AWS::IAM::ManagedPolicy': { max: 128 },
  'AWS::Lambda::Function': { max: 64 },
  'AWS::SNS::Topic': { max: 256 },
  'AWS::SQS::Queue': { max: 80 },
  'AWS::CloudWatch::Alarm': { max: 255 },
  'AWS::Events::Rule': { max: 64 },
};

export class ResolvedTemplate {
  readonly target: Required<DeployTarget>;
  private readonly raw: RawTemplate;
  private readonly physicalIds: Readonly<Record<string, string>>;
  private readonly names = new Map<string, string>();
  private readonly resolved = new Map<string, ResolvedResource>();
  private readonly resolving = new Set<string>();
  private readonly usedAttributes = new Map<string, Set<string>>();

  constructor(template: object, target: DeployTarget, physicalIds: Readonly<Record<string, string>> = {}) {
    this.raw = template as RawTemplate;
    this.target = { partition: 'aws', ...target };
    this.physicalIds = physicalIds;
    for (const id of Object.keys(physicalIds)) {
      if (this.raw.Resources?.[id] === undefined)
        throw new Error(`ResolvedTemplate physicalIds names ${id}, which is not a resource of the template`);
    }
    collectGetAtts(this.raw.Resources ?? {}, this.usedAttributes);
  }

  /** The resource, with properties resolved; throws when the template has no such logical ID. */
  resource(logicalId: string): ResolvedResource {
    const cached = this.resolved.get(logicalId);
    if (cached !== undefined) return cached;
    const raw = this.rawResource(logicalId);
    if (this.resolving.has(logicalId))
      throw new Error(`ResolvedTemplate: ${logicalId}'s properties refer back to ${logicalId}`);
    this.resolving.add(logicalId);
    try {
      const properties = this.resolveIn(raw.Properties ?? {}, `${logicalId}.Properties`) as Record<
        string,
        unknown
      >;
      const attributes: Record<string, string> = {};
      const wanted = new Set(this.usedAttributes.get(logicalId) ?? []);
      if (this.attributeOf(logicalId, raw, 'Arn', true) !== undefined) wanted.add('Arn');
      for (const a of wanted) attributes[a] = this.getAtt(logicalId, a);
      const r: ResolvedResource = {
        logicalId,
        type: raw.Type,
        properties,
        ref: this.ref(logicalId),
        attributes,
      };
      this.resolved.set(logicalId, r);
      return r;
    } finally {
      this.resolving.delete(logicalId);
    }
  }

  /** Every resource (of `type`, when given) that exists for this target (conditions applied). */
  resources(type?: string): ResolvedResource[] {
    return Object.entries(this.raw.Resources ?? {})
      .filter(([, r]) => (type === undefined || r.Type === type) && this.exists(r))
      .map(([id]) => this.resource(id));
  }

  /** Resolves intrinsics and pseudo parameters in `value`; throws naming what it cannot resolve. */
  resolve(value: unknown): unknown {
    const v = this.resolveIn(value, 'value');
    return v === NO_VALUE ? undefined : v;
  }

  /** Every IAM role of the template with its identity policies, resolved. */
  roles(): ResolvedRole[] {
    const managed = new Map(this.allManagedPolicies().map((p) => [p.arn, p]));
    const policyResources = this.resources('AWS::IAM::Policy');
    const managedResources = this.resources('AWS::IAM::ManagedPolicy');
    return this.resources('AWS::IAM::Role').map((role) => {
      const p = role.properties;
      const roleName = role.ref;
      const policies: Array<{ name: string; document: object }> = [];
      for (const inline of asArray(p.Policies) as Array<{ PolicyName: string; PolicyDocument: object }>)
        policies.push({ name: inline.PolicyName, document: inline.PolicyDocument });
      for (const pol of policyResources) {
        if ((asArray(pol.properties.Roles) as string[]).includes(roleName))
          policies.push({
            name: pol.properties.PolicyName as string,
            document: pol.properties.PolicyDocument as object,
          });
      }
      const attached = new Set<string>();
      for (const mp of managedResources) {
        if ((asArray(mp.properties.Roles) as string[]).includes(roleName)) attached.add(mp.ref);
      }
      const awsManagedPolicyArns: string[] = [];
      const externalManagedPolicyArns: string[] = [];
      for (const arn of asArray(p.ManagedPolicyArns) as string[]) {
        if (managed.has(arn)) attached.add(arn);
        else if (arn.startsWith(`arn:${this.target.partition}:iam::aws:policy/`))
          awsManagedPolicyArns.push(arn);
        else externalManagedPolicyArns.push(arn);
      }
      for (const arn of attached) {
        const mp = managed.get(arn) as ResolvedManagedPolicy;
        policies.push({ name: mp.name, document: mp.document });
      }
      return {
        logicalId: role.logicalId,
        roleName,
        arn: role.attributes.Arn as string,
        trustPolicy: p.AssumeRolePolicyDocument as object,
        policies,
        awsManagedPolicyArns,
        externalManagedPolicyArns,
      };
    });
  }

  /** Customer managed policies that no role of the template attaches (e.g. the per-node instance policy). */
  managedPolicies(): ResolvedManagedPolicy[] {
    const attached = new Set<string>();
    for (const role of this.resources('AWS::IAM::Role'))
      for (const arn of asArray(role.properties.ManagedPolicyArns) as string[]) attached.add(arn);
    return this.allManagedPolicies().filter(
      (p) => !attached.has(p.arn) && asArray(this.resource(p.logicalId).properties.Roles).length === 0,
    );
  }

  /** Bucket, topic, key and queue policies, one entry per resource they apply to. */
  resourcePolicies(): ResolvedResourcePolicy[] {
    const out: ResolvedResourcePolicy[] = [];
    const { partition, region, account } = this.target;
    for (const bp of this.resources('AWS::S3::BucketPolicy')) {
      const bucket = bp.properties.Bucket as string;
      out.push({
        kind: 'bucket',
        resourceName: bucket,
        resourceArn: `arn:${partition}:s3:::${bucket}`,
        logicalId: bp.logicalId,
        document: bp.properties.PolicyDocument as object,
      });
    }
    for (const tp of this.resources('AWS::SNS::TopicPolicy')) {
      for (const topicArn of asArray(tp.properties.Topics) as string[]) {
        out.push({
          kind: 'topic',
          resourceName: topicArn.split(':').pop() as string,
          resourceArn: topicArn,
          logicalId: tp.logicalId,
          document: tp.properties.PolicyDocument as object,
        });
      }
    }
    for (const qp of this.resources('AWS::SQS::QueuePolicy')) {
      for (const url of asArray(qp.properties.Queues) as string[]) {
        const name = url.split('/').pop() as string;
        out.push({
          kind: 'queue',
          resourceName: name,
          resourceArn: `arn:${partition}:sqs:${region}:${account}:${name}`,
          logicalId: qp.logicalId,
          document: qp.properties.PolicyDocument as object,
        });
      }
    }
    for (const key of this.resources('AWS::KMS::Key')) {
      if (key.properties.KeyPolicy === undefined) continue;
      out.push({
        kind: 'key',
        resourceName: key.ref,
        resourceArn: key.attributes.Arn as string,
        logicalId: key.logicalId,
        document: key.properties.KeyPolicy as object,
      });
    }
    return out;
  }

  // --- internals -------------------------------------------------------------------------------

  private allManagedPolicies(): ResolvedManagedPolicy[] {
    return this.resources('AWS::IAM::ManagedPolicy').map((mp) => ({
      logicalId: mp.logicalId,
      name: this.physicalName(mp.logicalId),
      arn: mp.ref,
      document: mp.properties.PolicyDocument as object,
    }));
  }

  private rawResource(logicalId: string): RawResource {
    const raw = this.raw.Resources?.[logicalId];
    if (raw === undefined) throw new Error(`ResolvedTemplate: no resource ${logicalId} in the template`);
    return raw;
  }

  private exists(r: RawResource): boolean {
    return r.Condition === undefined || this.condition(r.Condition);
  }

  private condition(name: string): boolean {
    const c = this.raw.Conditions?.[name];
    if (c === undefined) throw new Error(`ResolvedTemplate: no condition ${name} in the template`);
    const v = this.resolveIn(c, `Conditions.${name}`);
    if (typeof v !== 'boolean') throw new Error(`ResolvedTemplate: condition ${name} is not a boolean`);
    return v;
  }

  /** The physical name (or ID) of a resource: override, explicit name property, or generated. */
  private physicalName(logicalId: string): string {
    const cached = this.names.get(logicalId);
    if (cached !== undefined) return cached;
    const raw = this.rawResource(logicalId);
    let name: string;
    const override = this.physicalIds[logicalId];
    if (override !== undefined) {
      name = nameFromPhysicalId(raw.Type, override);
    } else {
      const prop = NAME_PROPERTY[raw.Type];
      const explicit = prop === undefined ? undefined : raw.Properties?.[prop];
      if (explicit !== undefined) {
        const v = this.resolveIn(explicit, `${logicalId}.Properties.${prop}`);
        if (typeof v !== 'string') throw new Error(`ResolvedTemplate: ${logicalId}.${prop} is not a string`);
        name = v;
      } else {
        name = this.generatedName(logicalId, raw);
      }
    }
    this.names.set(logicalId, name);
    return name;
  }

  private generatedName(logicalId: string, raw: RawResource): string {
    const { stackName, account, region } = this.target;
    const digest = createHash('sha256')
      .update(`${account}/${region}/${stackName}/${logicalId}`)
      .digest('hex');
    switch (raw.Type) {
      case 'AWS::KMS::Key':
      case 'AWS::SSM::Association':
        return uuidFrom(digest);
      case 'AWS::EC2::Volume':
        return `vol-${digest.slice(0, 17)}`;
      case 'AWS::DLM::LifecyclePolicy':
        return `policy-${digest.slice(0, 17)}`;
      default: {
        const rules = NAME_RULES[raw.Type] ?? { max: 128 };
        const suffix = `-${digest.slice(0, 8)}`;
        const fifo = raw.Type === 'AWS::SQS::Queue' && raw.Properties?.FifoQueue === true ? '.fifo' : '';
        let base = `${stackName}-${logicalId}`;
        base = base.slice(0, rules.max - suffix.length - fifo.length);
        const name = `${base}${suffix}${fifo}`;
        return rules.lower === true ? name.toLowerCase() : name;
      }
    }
  }

  private iamPath(logicalId: string): string {
    const path = this.rawResource(logicalId).Properties?.Path;
    if (path === undefined) return '/';
    const v = this.resolveIn(path, `${logicalId}.Properties.Path`);
    if (typeof v !== 'string') throw new Error(`ResolvedTemplate: ${logicalId}.Path is not a string`);
    return v;
  }

  private ref(logicalId: string): string {
    const raw = this.rawResource(logicalId);
    const name = this.physicalName(logicalId);
    const { partition, region, account } = this.target;
    switch (raw.Type) {
      case 'AWS::SNS::Topic':
        return `arn:${partition}:sns:${region}:${account}:${name}`;
      case 'AWS::SQS::Queue':
        return `https://sqs.${region}.${urlSuffix(partition)}/${account}/${name}`;
      case 'AWS::IAM::ManagedPolicy':
        return `arn:${partition}:iam::${account}:policy${this.iamPath(logicalId)}${name}`;
      case 'AWS::SNS::Subscription':
      case 'AWS::APS::RuleGroupsNamespace':
        return this.getAtt(logicalId, 'Arn');
      default:
        return name;
    }
  }

  /** An attribute value, or undefined when `optional` and the type has no such attribute. */
  private attributeOf(
    logicalId: string,
    raw: RawResource,
    attr: string,
    optional: boolean,
  ): string | undefined {
    const name = this.physicalName(logicalId);
    const { partition, region, account } = this.target;
    const arn = (service: string, resource: string, regional = true, acct = account): string =>
      `arn:${partition}:${service}:${regional ? region : ''}:${acct}:${resource}`;
    const table: Record<string, Record<string, () => string>> = {
      'AWS::DynamoDB::Table': {
        Arn: () => arn('dynamodb', `table/${name}`),
      },
      'AWS::IAM::Role': {
        Arn: () => arn('iam', `role${this.iamPath(logicalId)}${name}`, false),
        RoleId: () => `AROA${hexId(name, 17).toUpperCase()}`,
      },
      'AWS::IAM::ManagedPolicy': { PolicyArn: () => this.ref(logicalId) },
      'AWS::Lambda::Function': { Arn: () => arn('lambda', `function:${name}`) },
      'AWS::SNS::Topic': { TopicArn: () => this.ref(logicalId), TopicName: () => name },
      'AWS::S3::Bucket': {
        Arn: () => `arn:${partition}:s3:::${name}`,
        DomainName: () => `${name}.s3.${urlSuffix(partition)}`,
        RegionalDomainName: () => `${name}.s3.${region}.${urlSuffix(partition)}`,
      },
      'AWS::KMS::Key': { Arn: () => arn('kms', `key/${name}`), KeyId: () => name },
      'AWS::KMS::Alias': {},
      'AWS::SQS::Queue': {
        Arn: () => arn('sqs', name),
        QueueName: () => name,
        QueueUrl: () => this.ref(logicalId),
      },
      'AWS::Logs::LogGroup': { Arn: () => arn('logs', `log-group:${name}:*`) },
      'AWS::CloudWatch::Alarm': { Arn: () => arn('cloudwatch', `alarm:${name}`) },
      'AWS::Events::Rule': { Arn: () => arn('events', `rule/${name}`) },
      'AWS::SSM::Document': {},
      'AWS::SSM::Parameter': {
        Type: () => {
          const t = this.resolveIn(raw.Properties?.Type, `${logicalId}.Properties.Type`);
          return typeof t === 'string' ? t : 'String';
        },
        Value: () => {
          const v = this.resolveIn(raw.Properties?.Value, `${logicalId}.Properties.Value`);
          if (typeof v !== 'string') throw new Error(`ResolvedTemplate: ${logicalId}.Value is not a string`);
          return v;
        },
      },
      'AWS::EC2::Volume': { VolumeId: () => name },
      'AWS::DLM::LifecyclePolicy': { Arn: () => arn('dlm', `policy/${name}`) },
      'AWS::SSM::Association': { AssociationId: () => name },
      'AWS::SNS::Subscription': {
        Arn: () => `${this.attributeOfTopic(raw, logicalId)}:${hexId(name, 32)}`,
      },
      'AWS::APS::RuleGroupsNamespace': {
        Arn: () => {
          const ws = this.resolveIn(raw.Properties?.Workspace, `${logicalId}.Properties.Workspace`) as string;
          const wsId = ws.startsWith('arn:') ? (ws.split('/').pop() as string) : ws;
          return arn('aps', `rulegroupsnamespace/${wsId}/${name}`);
        },
      },
    };
    const fn = table[raw.Type]?.[attr];
    if (fn === undefined) {
      if (optional) return undefined;
      throw new Error(
        `ResolvedTemplate cannot resolve Fn::GetAtt ${logicalId}.${attr}: no rule for attribute ${attr} of ${raw.Type}`,
      );
    }
    return fn();
  }

  private attributeOfTopic(raw: RawResource, logicalId: string): string {
    const t = this.resolveIn(raw.Properties?.TopicArn, `${logicalId}.Properties.TopicArn`);
    if (typeof t !== 'string') throw new Error(`ResolvedTemplate: ${logicalId}.TopicArn is not a string`);
    return t;
  }

  private getAtt(logicalId: string, attr: string): string {
    const raw = this.rawResource(logicalId);
    return this.attributeOf(logicalId, raw, attr, false) as string;
  }

  private pseudo(name: string): string | undefined {
    const { partition, region, account, stackName } = this.target;
    switch (name) {
      case 'AWS::Partition':
        return partition;
      case 'AWS::Region':
        return region;
      case 'AWS::AccountId':
        return account;
      case 'AWS::URLSuffix':
        return urlSuffix(partition);
      case 'AWS::StackName':
        return stackName;
      case 'AWS::StackId':
        return `arn:${partition}:cloudformation:${region}:${account}:stack/${stackName}/${hexId(stackName, 32)}`;
      default:
        return undefined;
    }
  }

  private refName(name: string, where: string): unknown {
    if (name === 'AWS::NoValue') return NO_VALUE;
    const p = this.pseudo(name);
    if (p !== undefined) return p;
    if (this.raw.Resources?.[name] !== undefined) return this.ref(name);
    const param = this.raw.Parameters?.[name];
    if (param !== undefined) {
      if (param.Default === undefined)
        throw new Error(
          `ResolvedTemplate cannot resolve Ref ${name} at ${where}: parameter without a Default`,
        );
      return param.Default;
    }
    throw new Error(`ResolvedTemplate cannot resolve Ref ${name} at ${where}: no such resource or parameter`);
  }

  private sub(template: string, vars: Record<string, unknown>, where: string): string {
    return template.replace(/\$\{([^}]*)\}/g, (whole, expr: string) => {
      if (expr.startsWith('!')) return `\${${expr.slice(1)}}`;
      const name = expr.trim();
      if (Object.hasOwn(vars, name)) return String(vars[name]);
      const dot = name.indexOf('.');
      if (dot > 0 && !name.startsWith('AWS::')) {
        const id = name.slice(0, dot);
        if (this.raw.Resources?.[id] === undefined)
          throw new Error(`ResolvedTemplate cannot resolve Fn::Sub ${whole} at ${where}: no resource ${id}`);
        return this.getAtt(id, name.slice(dot + 1));
      }
      const v = this.refName(name, `${where} (Fn::Sub ${whole})`);
      if (typeof v !== 'string')
        throw new Error(`ResolvedTemplate: Fn::Sub ${whole} at ${where} is not a string`);
      return v;
    });
  }

  private resolveIn(value: unknown, where: string): unknown {
    if (Array.isArray(value)) {
      return value.map((v, i) => this.resolveIn(v, `${where}[${i}]`)).filter((v) => v !== NO_VALUE);
    }
    if (value === null || typeof value !== 'object') return value;
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    if (keys.length === 1) {
      const k = keys[0] as string;
      const arg = obj[k];
      const at = `${where}.${k}`;
      switch (k) {
        case 'Ref':
          return this.refName(arg as string, where);
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg)
            ? (arg as string[])
            : [(arg as string).split('.')[0], (arg as string).split('.').slice(1).join('.')];
          if (this.raw.Resources?.[id as string] === undefined)
            throw new Error(
              `ResolvedTemplate cannot resolve Fn::GetAtt ${id}.${attr} at ${where}: no such resource`,
            );
          return this.getAtt(id as string, this.resolveIn(attr, at) as string);
        }
        case 'Fn::Join': {
          const [sep, list] = arg as [string, unknown];
          const items = this.resolveIn(list, at);
          if (!Array.isArray(items)) throw new Error(`ResolvedTemplate: Fn::Join at ${where} needs a list`);
          return items.join(sep);
        }
        case 'Fn::Sub': {
          if (typeof arg === 'string') return this.sub(arg, {}, at);
          const [tpl, rawVars] = arg as [string, Record<string, unknown>];
          const vars = this.resolveIn(rawVars ?? {}, at) as Record<string, unknown>;
          return this.sub(tpl, vars, at);
        }
        case 'Fn::Select': {
          const [rawIndex, rawList] = arg as [unknown, unknown];
          const index = Number(this.resolveIn(rawIndex, at));
          const list = this.resolveIn(rawList, at);
          if (!Array.isArray(list) || !Number.isInteger(index) || index < 0 || index >= list.length)
            throw new Error(`ResolvedTemplate: Fn::Select index ${index} out of range at ${where}`);
          return list[index];
        }
        case 'Fn::Split': {
          const [sep, rawStr] = arg as [string, unknown];
          const s = this.resolveIn(rawStr, at);
          if (typeof s !== 'string')
            throw new Error(`ResolvedTemplate: Fn::Split at ${where} needs a string`);
          return s.split(sep);
        }
        case 'Fn::If': {
          const [cond, a, b] = arg as [string, unknown, unknown];
          return this.resolveIn(this.condition(cond) ? a : b, at);
        }
        case 'Fn::Equals': {
          const [a, b] = (arg as unknown[]).map((x) => this.resolveIn(x, at));
          return JSON.stringify(a) === JSON.stringify(b);
        }
        case 'Fn::And':
          return (arg as unknown[]).every((x) => this.resolveIn(x, at) === true);
        case 'Fn::Or':
          return (arg as unknown[]).some((x) => this.resolveIn(x, at) === true);
        case 'Fn::Not':
          return this.resolveIn((arg as unknown[])[0], at) !== true;
        case 'Condition':
          // Only an intrinsic inside Conditions/Fn::And etc.; elsewhere `Condition` is a plain key
          // (an IAM statement's Condition block is an object, not a string).
          if (typeof arg === 'string' && this.raw.Conditions?.[arg] !== undefined) return this.condition(arg);
          break;
        case 'Fn::FindInMap': {
          const [m, k1, k2] = (arg as unknown[]).map((x) => this.resolveIn(x, at)) as string[];
          const v = this.raw.Mappings?.[m as string]?.[k1 as string]?.[k2 as string];
          if (v === undefined)
            throw new Error(`ResolvedTemplate cannot resolve Fn::FindInMap ${m}.${k1}.${k2} at ${where}`);
          return v;
        }
        case 'Fn::GetAZs':
          return ['a', 'b', 'c'].map((z) => `${this.target.region}${z}`);
        case 'Fn::Base64':
          return Buffer.from(String(this.resolveIn(arg, at))).toString('base64');
        default:
          if (k.startsWith('Fn::'))
            throw new Error(`ResolvedTemplate cannot resolve ${k} at ${where}: intrinsic not supported`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      const r = this.resolveIn(v, `${where}.${k}`);
      if (r !== NO_VALUE) out[k] = r;
    }
    return out;
  }
}

/** `amazonaws.com`, or `amazonaws.com.cn` in the China partition. */
function urlSuffix(partition: string): string {
  return partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com';
}

/** A UUID-shaped ID (KMS key IDs, association IDs) from a hex digest. */
function uuidFrom(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function hexId(seed: string, length: number): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, length);
}

/** A physical ID as CloudFormation reports it (an ARN or URL for some types) → the name or ID. */
function nameFromPhysicalId(type: string, physicalId: string): string {
  if (type === 'AWS::SQS::Queue' && physicalId.startsWith('https://'))
    return physicalId.split('/').pop() as string;
  if (physicalId.startsWith('arn:')) {
    const resource = physicalId.split(':').slice(5).join(':');
    if (type === 'AWS::SNS::Topic' || type === 'AWS::Lambda::Function' || type === 'AWS::CloudWatch::Alarm')
      return resource.split(':').pop() as string;
    return resource.split('/').pop() as string;
  }
  return physicalId;
}

function asArray(v: unknown): unknown[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function collectGetAtts(resources: Record<string, RawResource>, into: Map<string, Set<string>>): void {
  const add = (id: string, attr: string): void => {
    if (!into.has(id)) into.set(id, new Set());
    into.get(id)?.add(attr);
  };
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (k === 'Fn::GetAtt') {
        if (Array.isArray(x) && typeof x[0] === 'string' && typeof x[1] === 'string') add(x[0], x[1]);
        else if (typeof x === 'string') add(x.split('.')[0] as string, x.split('.').slice(1).join('.'));
      }
      if (k === 'Fn::Sub') {
        const tpl = typeof x === 'string' ? x : Array.isArray(x) ? x[0] : undefined;
        if (typeof tpl === 'string') {
          for (const m of tpl.matchAll(/\$\{([A-Za-z0-9]+)\.([A-Za-z0-9.]+)\}/g))
            if (resources[m[1] as string] !== undefined) add(m[1] as string, m[2] as string);
        }
      }
      walk(x);
    }
  };
  walk(resources);
}
