import json
import math

import boto3

from stemedb_automation import tag_map

MANAGED = 'stemedb:managed'
NODE = 'stemedb:node'
DEPLOYMENT = 'stemedb:deployment'
REPLACES = 'stemedb:replaces'
LETTERS = 'fghijklmnop'


def decide_size(current, volume_type, grow_percent, min_grow, max_size, limits):
    """ExpandVolume's policy (lambda/shared/sizing-policy.ts) without usage data:
    the larger of +growPercent% and +minGrowGiB, capped at maxSizeGiB and the type's maximum.
    Returns (size or None at the cap, explanation)."""
    type_max = limits[volume_type]['maxGiB']
    cap = min(max_size, type_max)
    cap_name = ('maxSizeGiB (%d GiB)' % max_size if max_size < type_max else
                'maxSizeGiB and the %s maximum (%d GiB)' % (volume_type, type_max) if max_size == type_max else
                'the %s maximum (%d GiB)' % (volume_type, type_max))
    if current >= cap:
        return None, 'the volume is %d GiB, at the cap: %s' % (current, cap_name)
    by_percent = math.ceil(current * (100 + grow_percent) / 100 - 1e-9)
    wanted = max(by_percent, current + min_grow)
    target = min(wanted, cap)
    return target, ('%d GiB -> %d GiB (the sizing policy%s)' % (current, target, ', clamped to the cap, ' + cap_name if target < wanted else ''))


def _performance(new_type, size, old, limits):
    """IOPS and throughput for the types that take them: the old volume's when the type is the same
    (else the type's baseline, 3000 IOPS), within what the new size allows."""
    spec = limits[new_type]
    same = old.get('VolumeType') == new_type
    iops = throughput = 0
    if 'iops' in spec:
        lim = spec['iops']
        wanted = (int(old.get('Iops') or 0) if same else 0) or 3000
        iops = max(lim['min'], min(wanted, lim['max'], size * lim['perGiB']))
    if 'throughput' in spec:
        lim = spec['throughput']
        wanted = (int(old.get('Throughput') or 0) if same else 0) or lim['min']
        throughput = max(lim['min'], min(wanted, lim['max'], int(iops * lim['perIops'])))
    return iops, throughput


def _free_device(instance):
    used = set()
    for mapping in instance.get('BlockDeviceMappings') or []:
        name = mapping.get('DeviceName') or ''
        for prefix in ('/dev/sd', '/dev/xvd'):
            if name.startswith(prefix) and len(name) > len(prefix):
                used.add(name[len(prefix)])
    root = instance.get('RootDeviceName') or ''
    for prefix in ('/dev/sd', '/dev/xvd'):
        if root.startswith(prefix) and len(root) > len(prefix):
            used.add(root[len(prefix)])
    for letter in LETTERS:
        if letter not in used:
            return '/dev/sd' + letter
    raise Exception('no free device name from /dev/sdf to /dev/sdp on the instance')


def plan(events, context):
    ec2 = boto3.client('ec2')
    instance_id = events['instanceId']
    deployment = events['deployment']
    limits = json.loads(events['volumeLimits'])
    reservations = ec2.describe_instances(InstanceIds=[instance_id]).get('Reservations') or []
    instances = [i for r in reservations for i in r.get('Instances') or []]
    if len(instances) != 1:
        raise Exception('instance ' + instance_id + ' not found')
    instance = instances[0]
    itags = tag_map(instance)
    if itags.get(MANAGED) != 'true' or itags.get(DEPLOYMENT) != deployment:
        raise Exception('instance ' + instance_id + ' is not tagged ' + MANAGED + '=true and ' + DEPLOYMENT + '=' + deployment)
    zone = instance['Placement']['AvailabilityZone']
    volumes = ec2.describe_volumes(Filters=[
        {'Name': 'attachment.instance-id', 'Values': [instance_id]},
        {'Name': 'tag:' + MANAGED, 'Values': ['true']},
        {'Name': 'tag:' + DEPLOYMENT, 'Values': [deployment]},
    ]).get('Volumes') or []
    attached = [v for v in volumes if any(a.get('InstanceId') == instance_id and a.get('State') == 'attached'
                                          for a in v.get('Attachments') or [])]
    if len(attached) != 1:
        raise Exception('%d attached volumes of %s are tagged %s=true and %s=%s (%s); expected exactly one, the data volume'
                        % (len(attached), instance_id, MANAGED, DEPLOYMENT, deployment,
                           ', '.join(v['VolumeId'] for v in attached) or 'none'))
    old = attached[0]
    node = tag_map(old).get(NODE, '')
    if not node:
        raise Exception('volume ' + old['VolumeId'] + ' has no ' + NODE + ' tag')
    name = events['registryPrefix'] + node
    try:
        entry = json.loads(boto3.client('ssm').get_parameter(Name=name)['Parameter']['Value'])
    except Exception as err:
        raise Exception('node ' + node + ' has no readable registry entry ' + name + ': ' + str(err)[:200])
    if entry.get('instanceId') != instance_id or entry.get('volumeId') != old['VolumeId']:
        raise Exception('registry entry ' + name + ' names instance ' + str(entry.get('instanceId')) + ' and volume '
                        + str(entry.get('volumeId')) + ', not ' + instance_id + ' and ' + old['VolumeId'])
    new_type = events['volumeType'] or old['VolumeType']
    if new_type not in limits:
        raise Exception('volume type ' + new_type + ' is not one of ' + ', '.join(sorted(limits)))
    if events['inodeRatio'] and events['filesystem'] != 'ext4':
        raise Exception('InodeRatio needs Filesystem=ext4 (xfs allocates inodes as needed)')
    if events['sizeGiB']:
        size = int(events['sizeGiB'])
        why = '%d GiB, as asked (the current volume is %d GiB)' % (size, old['Size'])
    else:
        size, why = decide_size(old['Size'], new_type, int(events['growPercent']), int(events['minGrowGiB']),
                                int(events['maxSizeGiB']), limits)
        if size is None:
            raise Exception('no larger size by the sizing policy: ' + why + '; pass SizeGiB to choose one (above '
                            'maxSizeGiB that is a cost decision)')
    spec = limits[new_type]
    if not spec['minGiB'] <= size <= spec['maxGiB']:
        raise Exception('%d GiB is outside %d-%d GiB for %s' % (size, spec['minGiB'], spec['maxGiB'], new_type))
    iops, throughput = _performance(new_type, size, old, limits)
    reuse = events['newVolumeId']
    if reuse:
        found = (ec2.describe_volumes(VolumeIds=[reuse]).get('Volumes') or [{}])[0]
        t = tag_map(found)
        if (t.get(MANAGED) not in ('true', 'migration-failed') or t.get(DEPLOYMENT) != deployment or t.get(NODE) != node
                or t.get(REPLACES) != old['VolumeId'] or found.get('AvailabilityZone') != zone):
            raise Exception('NewVolumeId ' + reuse + ' is not a volume made by this document for node ' + node
                            + ' and volume ' + old['VolumeId'] + ' in ' + zone)
        elsewhere = [a.get('InstanceId') for a in found.get('Attachments') or [] if a.get('InstanceId') != instance_id]
        if elsewhere:
            raise Exception('NewVolumeId ' + reuse + ' is attached to ' + ', '.join(elsewhere))
        size, new_type = found['Size'], found['VolumeType']
        why = 'resuming with ' + reuse + ' (%d GiB %s)' % (size, new_type)
    return {
        'node': node, 'availabilityZone': zone, 'oldVolumeId': old['VolumeId'], 'oldSizeGiB': old['Size'],
        'oldVolumeType': old['VolumeType'], 'sizeGiB': size, 'volumeType': new_type, 'iops': iops,
        'throughput': throughput, 'device': _free_device(instance), 'sizing': why, 'reuseVolumeId': reuse,
    }
