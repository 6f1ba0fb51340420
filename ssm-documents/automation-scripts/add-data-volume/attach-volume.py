import time

import boto3


def _attachment(ec2, volume_id, instance_id):
    volume = ec2.describe_volumes(VolumeIds=[volume_id])['Volumes'][0]
    for a in volume.get('Attachments') or []:
        if a.get('InstanceId') == instance_id:
            return a, volume
    return None, volume


def attach(events, context):
    ec2 = boto3.client('ec2')
    volume_id, instance_id = events['volumeId'], events['instanceId']
    found, volume = _attachment(ec2, volume_id, instance_id)
    if found is None:
        others = [a.get('InstanceId') for a in volume.get('Attachments') or []]
        if others:
            raise Exception('volume ' + volume_id + ' is attached to ' + ', '.join(others))
        ec2.attach_volume(Device=events['device'], InstanceId=instance_id, VolumeId=volume_id)
    for _ in range(120):
        found, volume = _attachment(ec2, volume_id, instance_id)
        if found is not None and found.get('State') == 'attached':
            return {'device': found.get('Device', '')}
        time.sleep(5)
    raise Exception('volume ' + volume_id + ' is not attached to ' + instance_id + ' after 600 s')
