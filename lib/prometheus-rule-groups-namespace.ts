import { ArnFormat, aws_aps as aps, Stack } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/** An Amazon Managed Service for Prometheus workspace ID, e.g. `ws-12345678-abcd-ef01-2345-6789abcdef01`. */
const WORKSPACE_ID = /^ws-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** AMP rule groups namespace names: 1 to 64 characters, a letter or digit first, then `-._` too. */
const NAMESPACE_NAME = /^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$/;

export interface PrometheusRuleGroupsNamespaceProps {
  /** ID of the existing AMP workspace in this stack's account and region (`ws-` + UUID). */
  readonly workspaceId: string;
  /** The rules file text, e.g. from `renderPrometheusRules(...)`. */
  readonly rulesYaml: string;
  /** Name of the rule groups namespace. @default 'stemedb-disk' */
  readonly name?: string;
}

/**
 * The disk alert rules as a rule groups namespace in an Amazon Managed Service for Prometheus
 * workspace, so the managed ruler evaluates the same rules as a self-run Prometheus.
 */
export class PrometheusRuleGroupsNamespace extends Construct {
  /** The namespace resource. */
  public readonly namespace: aps.CfnRuleGroupsNamespace;
  /** ARN of the workspace the rules are added to. */
  public readonly workspaceArn: string;

  constructor(scope: Construct, id: string, props: PrometheusRuleGroupsNamespaceProps) {
    super(scope, id);
    const name = props.name ?? 'stemedb-disk';

    if (!WORKSPACE_ID.test(props.workspaceId)) {
      throw new Error(
        `PrometheusRuleGroupsNamespace: workspaceId is ${JSON.stringify(props.workspaceId)}; expected an Amazon Managed Service for Prometheus workspace ID such as ws-12345678-abcd-ef01-2345-6789abcdef01 (lower-case hex)`,
      );
    }
    if (!NAMESPACE_NAME.test(name)) {
      throw new Error(
        `PrometheusRuleGroupsNamespace: name is ${JSON.stringify(name)}; expected 1 to 64 characters, a letter or digit first, then letters, digits, '-', '.' or '_'`,
      );
    }
    if (props.rulesYaml.trim() === '') {
      throw new Error(
        'PrometheusRuleGroupsNamespace: rulesYaml is empty; expected the text of a Prometheus rules file',
      );
    }

    this.workspaceArn = Stack.of(this).formatArn({
      service: 'aps',
      resource: 'workspace',
      resourceName: props.workspaceId,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    this.namespace = new aps.CfnRuleGroupsNamespace(this, 'Resource', {
      workspace: this.workspaceArn,
      name,
      data: props.rulesYaml,
    });
  }
}
