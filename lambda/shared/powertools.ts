import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE } from '../../contracts/metrics';

/**
 * One Logger and one Metrics instance per container, shared by every handler.
 * Service name and metrics namespace come from the environment the construct sets
 * (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE), with safe defaults for tests.
 */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'stemedb-disk' });

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'stemedb-disk',
});
