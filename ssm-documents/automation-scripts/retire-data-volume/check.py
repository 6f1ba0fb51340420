import datetime

import boto3

from stemedb_automation import tag_map


def _volume(ec2, volume_id):
    found = ec2.describe_volumes(VolumeIds=[volume_id]).get('Volumes') or []
    if not found:
        raise Exception('volume ' + volume_id + ' not found')
    return found[0]


def check(events, context):
    ec2 = boto3.client('ec2')
    volume_id, instance_id = events['volumeId'], events['instanceId']
    old = _volume(ec2, volume_id)
    tags = tag_map(old)
    if tags.get('stemedb:managed') != 'replaced' or tags.get('stemedb:deployment') != events['deployment']:
        raise Exception(volume_id + ' is not a volume of this deployment that AddDataVolume replaced '
                        '(stemedb:managed=' + str(tags.get('stemedb:managed')) + ')')
    new_id = tags.get('stemedb:replaced-by', '')
    try:
        replaced_at = datetime.datetime.strptime(tags.get('stemedb:replaced-at', ''), '%Y-%m-%dT%H:%M:%SZ').replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise Exception(volume_id + ' has no valid stemedb:replaced-at tag')
    new = _volume(ec2, new_id)
    ntags = tag_map(new)
    if (ntags.get('stemedb:managed') != 'true' or ntags.get('stemedb:deployment') != events['deployment']
            or ntags.get('stemedb:node') != tags.get('stemedb:node')
            or not any(a.get('InstanceId') == instance_id and a.get('State') == 'attached' for a in new.get('Attachments') or [])):
        raise Exception('the replacing volume ' + new_id + ' is not a managed volume of node ' + str(tags.get('stemedb:node'))
                        + ' attached to ' + instance_id + ': not detaching ' + volume_id)
    ends = replaced_at + datetime.timedelta(hours=int(events['graceHours']))
    now = datetime.datetime.now(datetime.timezone.utc)
    if now < ends:
        raise Exception('the grace period of ' + volume_id + ' ends at ' + ends.strftime('%Y-%m-%dT%H:%M:%SZ')
                        + ' (replaced at ' + tags['stemedb:replaced-at'] + '); run again after that, or with a smaller GracePeriodHours')
    attachments = old.get('Attachments') or []
    elsewhere = [a.get('InstanceId') for a in attachments if a.get('InstanceId') != instance_id]
    if elsewhere:
        raise Exception(volume_id + ' is attached to ' + ', '.join(elsewhere) + ', not ' + instance_id)
    status = 'ready' if attachments else 'detached'
    return {'status': status, 'node': tags.get('stemedb:node', ''), 'replacedBy': new_id,
            'replacedAt': tags['stemedb:replaced-at']}
