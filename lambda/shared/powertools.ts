import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
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

/**
 * One invocation of a handler: returns what `run` returns; an error `run` throws is logged as
 * `<name> failed`, counted once as the metric `errorMetric`, and thrown again (Lambda reports it);
 * the stored metrics are flushed either way.
 */
export async function instrumentedInvocation<T>(
  name: string,
  errorMetric: string,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    logger.error(`${name} failed`, { error: err as Error });
    metrics.addMetric(errorMetric, MetricUnit.Count, 1);
    throw err;
  } finally {
    metrics.publishStoredMetrics();
  }
}
