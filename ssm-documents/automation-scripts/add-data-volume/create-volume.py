import time

import boto3

from stemedb_automation import error_code


def create(events, context):
    ec2 = boto3.client('ec2')
    if events['reuseVolumeId']:
        # Managed again for the new attempt (a failed one left it migration-failed).
        ec2.create_tags(Resources=[events['reuseVolumeId']], Tags=[
            {'Key': 'stemedb:managed', 'Value': 'true'},
            {'Key': 'stemedb:migration-result', 'Value': 'resumed by ' + events['executionId']},
        ])
        return {'volumeId': events['reuseVolumeId'], 'created': 'reused'}
    tags = [
        {'Key': 'stemedb:managed', 'Value': 'true'},
        {'Key': 'stemedb:node', 'Value': events['node']},
        {'Key': 'stemedb:deployment', 'Value': events['deployment']},
        {'Key': 'stemedb:replaces', 'Value': events['oldVolumeId']},
        {'Key': 'stemedb:migration', 'Value': events['executionId']},
        {'Key': 'Name', 'Value': events['deployment'] + '-' + events['node'] + '-data'},
    ]
    performance = {}
    if int(events['iops']) > 0:
        performance['Iops'] = int(events['iops'])
    if int(events['throughput']) > 0:
        performance['Throughput'] = int(events['throughput'])

    def create_volume(dry_run):
        return ec2.create_volume(
            AvailabilityZone=events['availabilityZone'],
            Size=int(events['sizeGiB']),
            VolumeType=events['volumeType'],
            Encrypted=True,
            KmsKeyId=events['kmsKeyId'],
            TagSpecifications=[{'ResourceType': 'volume', 'Tags': tags}],
            ClientToken=events['executionId'],
            DryRun=dry_run,
            **performance,
        )

    if events['dryRun'] == 'true':
        try:
            create_volume(True)
        except Exception as err:
            if error_code(err) == 'DryRunOperation':
                return {'volumeId': '', 'created': 'dry-run: CreateVolume would be allowed'}
            raise Exception('CreateVolume (dry run) refused: ' + error_code(err) + ': ' + str(err)[:300])
        return {'volumeId': '', 'created': 'dry-run'}
    volume_id = create_volume(False)['VolumeId']
    state = 'unknown'
    for _ in range(120):
        state = ec2.describe_volumes(VolumeIds=[volume_id])['Volumes'][0]['State']
        if state == 'available':
            return {'volumeId': volume_id, 'created': 'created'}
        if state in ('error', 'deleting', 'deleted'):
            raise Exception('volume ' + volume_id + ' is ' + state + ' after CreateVolume')
        time.sleep(5)
    raise Exception('volume ' + volume_id + ' is still ' + state + ' after 600 s')
