def fail(events, context):
    raise Exception('disk still ' + (events['used'] or 'an unknown') + '% used after the emergency cleanup '
                    '(level ' + events['level'] + '%): ' + events['advice'])
