import re

import boto3

NODE = re.compile(r'[a-z][a-z0-9-]{0,30}[a-z0-9]')


def resolve(events, context):
    node = events['node']
    if node == '':
        tags = boto3.client('ec2').describe_tags(Filters=[
            {'Name': 'resource-id', 'Values': [events['instanceId']]},
            {'Name': 'key', 'Values': ['stemedb:node']},
        ]).get('Tags', [])
        if not tags:
            raise Exception('instance ' + events['instanceId'] + ' has no stemedb:node tag; pass Node')
        node = tags[0].get('Value', '')
    if not NODE.fullmatch(node):
        raise Exception('node name ' + repr(node) + ' is not valid')
    return {'node': node, 'prefix': 'wal/' + node + '/'}
