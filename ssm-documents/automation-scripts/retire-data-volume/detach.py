import datetime
import time

import boto3


def detach(events, context):
    ec2 = boto3.client('ec2')
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    ec2.create_tags(Resources=[events['volumeId']], Tags=[{'Key': 'stemedb:retired-at', 'Value': when}])
    ec2.detach_volume(VolumeId=events['volumeId'], InstanceId=events['instanceId'])
    state = 'unknown'
    for _ in range(120):
        state = ec2.describe_volumes(VolumeIds=[events['volumeId']])['Volumes'][0]['State']
        if state == 'available':
            return {'retiredAt': when}
        time.sleep(5)
    raise Exception('volume ' + events['volumeId'] + ' is still ' + state + ' 600 s after DetachVolume')
