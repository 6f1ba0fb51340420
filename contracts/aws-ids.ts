/**
 * The forms of AWS identifiers, as every side checks them: the configuration (lib/config.ts), the
 * constructs that take an ID, the node registry parser and the Lambdas' input checks.
 */

/** An EC2 instance ID: `i-` and 8 or 17 hex digits. */
export const INSTANCE_ID_PATTERN = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** An EBS volume ID: `vol-` and 8 or 17 hex digits. */
export const VOLUME_ID_PATTERN = /^vol-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

/** An Availability Zone name (`eu-west-1a`, and Local Zones such as `us-east-1-bos-1a`). */
export const AVAILABILITY_ZONE_PATTERN = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}[a-z](?:-[a-z]+-\d[a-z])?$/;

/** A 12-digit AWS account ID. */
export const ACCOUNT_PATTERN = /^\d{12}$/;

/** An AWS region name such as `eu-west-1`. */
export const REGION_PATTERN = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
