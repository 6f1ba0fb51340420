/** The CloudWatch namespace every remediation function publishes its metrics to (Powertools EMF). */
export const METRICS_NAMESPACE = 'StemeDB/DiskAutomation';
