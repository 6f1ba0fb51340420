import datetime

import boto3


def mark(events, context):
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    boto3.client('ec2').create_tags(Resources=[events['oldVolumeId']], Tags=[
        {'Key': 'stemedb:managed', 'Value': 'replaced'},
        {'Key': 'stemedb:replaced-by', 'Value': events['newVolumeId']},
        {'Key': 'stemedb:replaced-at', 'Value': when},
    ])
    return {'replacedAt': when}
