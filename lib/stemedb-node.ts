import { Stack } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import { type NodeRegistryEntry, nodeRegistryParameterName } from '../contracts/node-registry';
import type { DiskThresholds } from '../contracts/thresholds';
import { AdoptedDataVolume } from './adopted-data-volume';
import type { NodeConfig, StemeDbConfig } from './config';
import { DataVolume } from './data-volume';
import { NodeDiskMetricsAgent } from './disk-metrics-agent';
import { NodeDiskAlarms } from './node-disk-alarms';
import { NodeInstancePolicy } from './node-instance-policy';
import type { ImportedSharedResources } from './shared-stack-exports';
import type { NodeArchiveAccess } from './wal-archive-bucket';

export interface StemeDbNodeProps {
  /** The node, as validated by the configuration module. */
  readonly node: NodeConfig;
  /** Name prefix. @default 'StemeDB' */
  readonly prefix?: string;
  /** @default '/data' */
  readonly dataMount?: string;
  readonly thresholds: DiskThresholds;
  /** Key for a volume the stack creates. Required when the node has `dataVolume`. */
  readonly encryptionKey?: kms.IKey;
  /** Topic the node's alarms notify. @default none */
  readonly topic?: sns.ITopic;
  /** The WAL archive: with it, the node gets its instance policy. @default none */
  readonly instanceAccess?: {
    readonly archive: NodeArchiveAccess;
  };
  /** What installs the CloudWatch agent on the instance (the node's configuration waits for it). @default none */
  readonly agentInstalledBy?: Construct;
}

/**
 * Everything that belongs to one StemeDB node: its data volume (created or adopted), its
 * CloudWatch agent configuration (its own metrics namespace), its disk alarms on that namespace,
 * and its entry in the node registry (an SSM parameter the alarm router and expand-volume read, so
 * an alarm for an unknown node starts nothing and an unregistered instance is never expanded).
 * Per-node resources stay in this one construct so nodes can be spread over several stacks.
 */
export class StemeDbNode extends Construct {
  public readonly nodeName: string;
  public readonly instanceId: string;
  public readonly volumeId: string;
  public readonly alarms: NodeDiskAlarms;
  /** The node's agent configuration and metrics namespace. */
  public readonly metricsAgent: NodeDiskMetricsAgent;
  public readonly registryParameter: ssm.StringParameter;
  /** The volume the stack created, when it created one. */
  public readonly dataVolume?: DataVolume;
  /** The managed policy to attach to the node's instance role, when `instanceAccess` is given. */
  public readonly instancePolicy?: NodeInstancePolicy;

  constructor(scope: Construct, id: string, props: StemeDbNodeProps) {
    super(scope, id);
    const { node } = props;
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const dataMount = props.dataMount ?? '/data';
    this.nodeName = node.name;
    this.instanceId = node.instanceId;

    if (node.dataVolume !== undefined) {
      if (props.encryptionKey === undefined) {
        throw new Error(
          `StemeDbNode encryptionKey is required for node ${node.name}, whose dataVolume the stack creates`,
        );
      }
      this.dataVolume = new DataVolume(this, 'DataVolume', {
        nodeName: node.name,
        instanceId: node.instanceId,
        availabilityZone: node.availabilityZone,
        sizeGiB: node.dataVolume.sizeGiB,
        volumeType: node.dataVolume.type,
        iops: node.dataVolume.iops,
        throughput: node.dataVolume.throughput,
        deviceName: node.dataVolume.deviceName,
        encryptionKey: props.encryptionKey,
        prefix,
      });
      this.volumeId = this.dataVolume.volumeId;
    } else if (node.existingVolumeId !== undefined) {
      this.volumeId = new AdoptedDataVolume(this, 'AdoptedVolume', {
        nodeName: node.name,
        volumeId: node.existingVolumeId,
        prefix,
      }).volumeId;
    } else {
      throw new Error(`StemeDbNode node ${node.name} needs dataVolume or existingVolumeId`);
    }

    this.metricsAgent = new NodeDiskMetricsAgent(this, 'MetricsAgent', {
      prefix,
      nodeName: node.name,
      instanceId: node.instanceId,
      dataMount,
      installedBy: props.agentInstalledBy,
    });

    this.alarms = new NodeDiskAlarms(this, 'Alarms', {
      prefix,
      nodeName: node.name,
      instanceId: node.instanceId,
      dataMount,
      namespace: this.metricsAgent.namespace,
      thresholds: props.thresholds,
      topic: props.topic,
    });

    if (props.instanceAccess !== undefined) {
      this.instancePolicy = new NodeInstancePolicy(this, 'InstancePolicy', {
        prefix,
        nodeName: node.name,
        archive: props.instanceAccess.archive,
        agentConfig: this.metricsAgent.parameter,
        metricsNamespace: this.metricsAgent.namespace,
      });
    }

    const entry: NodeRegistryEntry = {
      name: node.name,
      instanceId: node.instanceId,
      availabilityZone: node.availabilityZone,
      volumeId: this.volumeId,
      dataMount,
    };
    this.registryParameter = new ssm.StringParameter(this, 'Registry', {
      parameterName: nodeRegistryParameterName(prefix, node.name),
      description: `${prefix} node registry: ${node.name}`,
      stringValue: Stack.of(this).toJsonString(entry),
    });
  }
}

/**
 * One {@link StemeDbNode} per node (id `Node-<name>`), as both kinds of stack build them: with the
 * deployment's prefix, data mount and thresholds, and the shared stack's key, topic and WAL
 * archive (created in the shared stack, imported in a node stack).
 */
export function addStemeDbNodes(
  scope: Construct,
  nodes: readonly NodeConfig[],
  config: Pick<StemeDbConfig, 'prefix' | 'dataMount' | 'thresholds'>,
  shared: ImportedSharedResources,
  agentInstalledBy?: Construct,
): StemeDbNode[] {
  return nodes.map(
    (node) =>
      new StemeDbNode(scope, `Node-${node.name}`, {
        node,
        prefix: config.prefix,
        dataMount: config.dataMount,
        thresholds: config.thresholds,
        encryptionKey: shared.key,
        topic: shared.topic,
        instanceAccess: { archive: shared.archive },
        agentInstalledBy,
      }),
  );
}
