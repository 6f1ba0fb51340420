import datetime
from typing import NoReturn

import boto3

from stemedb_automation import error_code


def _query(qid, metric, stat, namespace, dimensions):
    return {
        'Id': qid,
        'MetricStat': {
            'Metric': {'Namespace': namespace, 'MetricName': metric, 'Dimensions': dimensions},
            'Period': 60,
            'Stat': stat,
        },
        'ReturnData': True,
    }


# Only "no datapoints" (an agent that has not reported yet) gives '' values. A CloudWatch
# error (AccessDenied, throttling after boto3's retries, a query answered Forbidden or
# InternalError) fails the step, and the step's onFailure notifies: '' would turn off
# expand-volume's "growth not yet used" guard, and a rerun after a failed GrowFilesystem
# would grow the volume again (EBS cannot shrink).
def _fail(events, why) -> NoReturn:
    raise Exception('cannot read the disk metrics of ' + events['instanceId'] + ' ' + events['mountPoint']
                    + ': ' + why + '; without them expand-volume cannot tell whether the last growth'
                    + ' is used yet, so nothing is expanded')


def read_usage(events, context):
    dimensions = [
        {'Name': 'InstanceId', 'Value': events['instanceId']},
        {'Name': 'path', 'Value': events['mountPoint']},
    ]
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        out = boto3.client('cloudwatch').get_metric_data(
            MetricDataQueries=[
                _query('free', 'disk_free', 'Minimum', events['namespace'], dimensions),
                _query('total', 'disk_total', 'Maximum', events['namespace'], dimensions),
            ],
            StartTime=now - datetime.timedelta(minutes=15),
            EndTime=now,
            ScanBy='TimestampDescending',
        )
    except Exception as err:
        _fail(events, 'CloudWatch GetMetricData failed: ' + error_code(err))
    results = out.get('MetricDataResults', [])
    bad = [str(r.get('Id')) + ' ' + r['StatusCode'] for r in results if r.get('StatusCode') in ('Forbidden', 'InternalError')]
    if bad:
        _fail(events, 'CloudWatch answered ' + ', '.join(bad))
    values = {r.get('Id'): r.get('Values') or [] for r in results}
    free = values.get('free') or []
    total = values.get('total') or []
    if not free or not total or int(total[0]) <= 0:
        return {'usedBytes': '', 'filesystemBytes': '', 'note': 'no recent disk_free and disk_total datapoints'}
    size = int(total[0])
    used = min(size, max(0, size - int(free[0])))
    return {'usedBytes': str(used), 'filesystemBytes': str(size), 'note': ''}
