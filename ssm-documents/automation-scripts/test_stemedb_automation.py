"""Unit tests of stemedb_automation.py and fail-execution.py with the real python3 (the SSM runtime's
version or older). Run: python3 -m unittest discover -s ssm-documents/automation-scripts
(test/automation-scripts.test.ts runs them in npm test)."""
import datetime
import importlib.util
import os
import unittest
from unittest import mock

import stemedb_automation as h

HERE = os.path.dirname(os.path.abspath(__file__))


class ClientError(Exception):
    """What botocore raises: the code is in response['Error']['Code']."""

    def __init__(self, code):
        super().__init__('An error occurred (' + str(code) + ')')
        self.response = {'Error': {'Code': code, 'Message': 'm'}}


class FakeSsm:
    """Answers each operation from a list (the last answer repeats); an Exception answer is raised."""

    def __init__(self, **answers):
        self.answers = {op: list(a) for op, a in answers.items()}
        self.calls = []

    def _answer(self, op, kwargs):
        self.calls.append((op, kwargs))
        queue = self.answers[op]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get_command_invocation(self, **kwargs):
        return self._answer('get_command_invocation', kwargs)

    def list_commands(self, **kwargs):
        return self._answer('list_commands', kwargs)


def invocation(stdout='', stderr='', status='Success', code=0):
    return {'Status': status, 'ResponseCode': code, 'StandardOutputContent': stdout, 'StandardErrorContent': stderr}


def execution(*steps):
    return {'StepExecutions': list(steps)}


def step(name, command_id=None, started=None, **more):
    s = {'StepName': name, 'Outputs': {'CommandId': [command_id]} if command_id is not None else {}}
    if started is not None:
        s['ExecutionStartTime'] = started
    s.update(more)
    return s


class ErrorCodeTest(unittest.TestCase):
    def test_reads_the_code_of_a_client_error(self):
        self.assertEqual(h.error_code(ClientError('AccessDeniedException')), 'AccessDeniedException')

    def test_names_the_class_of_an_exception_without_a_response(self):
        self.assertEqual(h.error_code(ValueError('x')), 'ValueError')

    def test_names_the_class_when_the_code_is_empty_or_missing(self):
        self.assertEqual(h.error_code(ClientError('')), 'ClientError')
        self.assertEqual(h.error_code(ClientError(None)), 'ClientError')
        err = ClientError('x')
        err.response = {}
        self.assertEqual(h.error_code(err), 'ClientError')


@mock.patch('time.sleep')
class CommandInvocationTest(unittest.TestCase):
    def test_returns_the_invocation_at_once(self, sleep):
        ssm = FakeSsm(get_command_invocation=[invocation('{}')])
        self.assertEqual(h.command_invocation(ssm, 'c-1', 'i-1')['StandardOutputContent'], '{}')
        self.assertEqual(ssm.calls, [('get_command_invocation', {'CommandId': 'c-1', 'InstanceId': 'i-1'})])
        sleep.assert_not_called()

    def test_waits_while_ssm_does_not_know_the_invocation_yet(self, sleep):
        ssm = FakeSsm(get_command_invocation=[ClientError('InvocationDoesNotExist')] * 3 + [invocation('ok')])
        self.assertEqual(h.command_invocation(ssm, 'c-1', 'i-1')['StandardOutputContent'], 'ok')
        self.assertEqual(len(ssm.calls), 4)
        self.assertEqual(sleep.call_args_list, [mock.call(2)] * 3)

    def test_gives_up_after_ten_attempts_and_raises_the_last_error(self, sleep):
        ssm = FakeSsm(get_command_invocation=[ClientError('InvocationDoesNotExist')])
        with self.assertRaises(ClientError):
            h.command_invocation(ssm, 'c-1', 'i-1')
        self.assertEqual(len(ssm.calls), 10)
        self.assertEqual(sleep.call_count, 9)

    def test_raises_any_other_error_at_once(self, sleep):
        ssm = FakeSsm(get_command_invocation=[ClientError('AccessDeniedException'), invocation('never')])
        with self.assertRaises(ClientError) as raised:
            h.command_invocation(ssm, 'c-1', 'i-1')
        self.assertEqual(h.error_code(raised.exception), 'AccessDeniedException')
        self.assertEqual(len(ssm.calls), 1)
        sleep.assert_not_called()


class LastJsonTest(unittest.TestCase):
    def test_reads_the_last_non_blank_line(self):
        self.assertEqual(h.last_json('progress\n{"a": 1}\n{"b": "two"}\n\n  \n'), {'b': 'two'})

    def test_keeps_numbers_with_a_fraction_as_the_host_wrote_them(self):
        self.assertEqual(h.last_json('{"used": 97.50, "size": 10}'), {'used': '97.50', 'size': 10})

    def test_gives_floats_when_asked(self):
        self.assertEqual(h.last_json('{"used": 97.50}', numbers_as_text=False), {'used': 97.5})

    def test_is_none_for_malformed_json_on_the_last_line(self):
        self.assertIsNone(h.last_json('{"a": 1}\n{"truncated": '))
        self.assertIsNone(h.last_json('{"a": 1}\nnot json'))

    def test_is_none_for_a_last_line_that_is_not_an_object(self):
        self.assertIsNone(h.last_json('[1, 2]'))
        self.assertIsNone(h.last_json('"text"'))
        self.assertIsNone(h.last_json('null'))

    def test_is_none_for_no_output(self):
        self.assertIsNone(h.last_json(None))
        self.assertIsNone(h.last_json(''))
        self.assertIsNone(h.last_json('\n \n'))

    def test_splits_at_newlines_only_so_a_json_string_may_hold_line_separators(self):
        # U+2028 and U+0085 are valid unescaped in a JSON string; str.splitlines() would split there.
        self.assertEqual(h.last_json('x\n{"s": "a\u2028b\x85c"}'), {'s': 'a\u2028b\x85c'})


class StepExecutionTest(unittest.TestCase):
    def test_finds_the_step_by_name(self):
        found = h.step_execution(execution(step('A', 'c-a'), step('B', 'c-b')), 'B')
        self.assertEqual(found, step('B', 'c-b'))

    def test_is_none_for_a_step_that_did_not_run(self):
        self.assertIsNone(h.step_execution(execution(step('A')), 'B'))
        self.assertIsNone(h.step_execution({}, 'B'))
        self.assertIsNone(h.step_execution({'StepExecutions': None}, 'B'))


class FindCommandIdTest(unittest.TestCase):
    def test_takes_the_command_id_output_of_the_step(self):
        ssm = FakeSsm()
        self.assertEqual(h.find_command_id(ssm, execution(step('Run', 'c-1')), 'Run', 'i-1', 'Doc'), 'c-1')
        self.assertEqual(ssm.calls, [])

    def test_lists_the_newest_command_of_the_document_since_the_step_started_when_it_recorded_none(self):
        started = datetime.datetime(2024, 5, 1, 14, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        ssm = FakeSsm(list_commands=[{'Commands': [
            {'CommandId': 'c-old', 'RequestedDateTime': '2024-05-01T12:00:01Z'},
            {'CommandId': 'c-new', 'RequestedDateTime': '2024-05-01T12:00:09Z'},
        ]}])
        self.assertEqual(h.find_command_id(ssm, execution(step('Run', '', started)), 'Run', 'i-1', 'Doc'), 'c-new')
        self.assertEqual(ssm.calls, [('list_commands', {'InstanceId': 'i-1', 'Filters': [
            {'key': 'DocumentName', 'value': 'Doc'},
            {'key': 'InvokedAfter', 'value': '2024-05-01T12:00:00Z'},
        ]})])

    def test_lists_without_a_time_filter_when_the_start_time_is_unknown(self):
        ssm = FakeSsm(list_commands=[{'Commands': [{'CommandId': 'c-9'}]}])
        self.assertEqual(h.find_command_id(ssm, execution(step('Run')), 'Run', 'i-1', 'Doc'), 'c-9')
        self.assertEqual(ssm.calls[0][1]['Filters'], [{'key': 'DocumentName', 'value': 'Doc'}])

    def test_is_empty_when_the_step_sent_no_command_or_did_not_run(self):
        ssm = FakeSsm(list_commands=[{'Commands': []}])
        self.assertEqual(h.find_command_id(ssm, execution(step('Run')), 'Run', 'i-1', 'Doc'), '')
        self.assertEqual(h.find_command_id(ssm, execution(step('Other', 'c-1')), 'Run', 'i-1', 'Doc'), '')


class InvocationResultTest(unittest.TestCase):
    def test_returns_the_json_result_and_how_the_command_ended(self):
        report, note = h.invocation_result(invocation('{"status": "ok"}', status='Success', code=0), 300)
        self.assertEqual(report, {'status': 'ok'})
        self.assertEqual(note, 'command Success, exit code 0')

    def test_names_the_last_stderr_line_cut_when_there_is_no_json_line(self):
        report, note = h.invocation_result(
            invocation('no json', 'first\n' + 'x' * 600 + '\n', status='Failed', code=3), 500, 'Step: ')
        self.assertIsNone(report)
        self.assertEqual(note, 'Step: command Failed, exit code 3, no JSON result line: ' + 'x' * 500)

    def test_says_only_that_there_is_no_json_line_when_stderr_is_empty(self):
        report, note = h.invocation_result({'Status': 'TimedOut'}, 300)
        self.assertIsNone(report)
        self.assertEqual(note, 'command TimedOut, exit code None, no JSON result line')


@mock.patch('time.sleep')
class CommandResultTest(unittest.TestCase):
    def test_reads_the_result_of_the_command_the_step_sent(self, sleep):
        ssm = FakeSsm(get_command_invocation=[invocation('log\n{"usedPercent": 71.5}')])
        report, note = h.command_result(ssm, execution(step('Clean', 'c-1')), 'Clean', 'i-1', 'Doc')
        self.assertEqual(report, {'usedPercent': '71.5'})
        self.assertEqual(note, 'Clean: command Success, exit code 0')

    def test_leaves_the_step_name_out_and_cuts_stderr_as_asked(self, sleep):
        ssm = FakeSsm(get_command_invocation=[invocation('', 'e' * 600, 'Failed', 1)])
        report, note = h.command_result(ssm, execution(step('Clean', 'c-1')), 'Clean', 'i-1', 'Doc',
                                        labelled=False, stderr_chars=500)
        self.assertIsNone(report)
        self.assertEqual(note, 'command Failed, exit code 1, no JSON result line: ' + 'e' * 500)

    def test_says_when_the_step_sent_no_command(self, sleep):
        ssm = FakeSsm(list_commands=[{'Commands': []}])
        self.assertEqual(h.command_result(ssm, execution(step('Clean')), 'Clean', 'i-1', 'Doc'),
                         (None, 'step Clean sent no command'))
        self.assertEqual(h.command_result(ssm, execution(), 'Clean', 'i-1', 'Doc', hint=' (offline?)'),
                         (None, 'step Clean sent no command (offline?)'))

    def test_never_raises_when_ssm_fails(self, sleep):
        ssm = FakeSsm(get_command_invocation=[ClientError('ThrottlingException')])
        self.assertEqual(h.command_result(ssm, execution(step('Clean', 'c-1')), 'Clean', 'i-1', 'Doc'),
                         (None, 'cannot read the result of step Clean: ThrottlingException'))
        ssm = FakeSsm(list_commands=[ClientError('AccessDeniedException')])
        self.assertEqual(h.command_result(ssm, execution(step('Clean')), 'Clean', 'i-1', 'Doc'),
                         (None, 'cannot read the result of step Clean: AccessDeniedException'))

    def test_reads_a_failed_command_whose_output_is_missing(self, sleep):
        ssm = FakeSsm(get_command_invocation=[{'Status': 'Failed', 'ResponseCode': 2}])
        self.assertEqual(h.command_result(ssm, execution(step('Clean', 'c-1')), 'Clean', 'i-1', 'Doc'),
                         (None, 'Clean: command Failed, exit code 2, no JSON result line'))


class ChildOutcomeTest(unittest.TestCase):
    def test_says_how_a_child_automation_ended(self):
        self.assertEqual(h.child_outcome(execution(step('Archive', StepStatus='Success')), 'Archive'), ('Success', ''))
        failed = step('Archive', StepStatus='Failed', FailureMessage='m' * 400)
        failed['Outputs'] = {'Status': ['TimedOut']}
        self.assertEqual(h.child_outcome(execution(failed), 'Archive'), ('Failed (TimedOut)', 'm' * 300))

    def test_says_not_run_or_unknown(self):
        self.assertEqual(h.child_outcome(execution(), 'Archive'), ('not run', ''))
        self.assertEqual(h.child_outcome(execution(step('Archive')), 'Archive'), ('unknown', ''))


class ValueTest(unittest.TestCase):
    def test_as_text(self):
        self.assertEqual([h.as_text(v) for v in (None, True, False, 0, 1.5, 'x', [1])],
                         ['', 'true', 'false', '0', '1.5', 'x', '[1]'])

    def test_dig(self):
        self.assertEqual(h.dig({'a': {'b': {'c': 3}}}, 'a', 'b', 'c'), 3)
        self.assertIsNone(h.dig({'a': {'b': 1}}, 'a', 'b', 'c'))
        self.assertIsNone(h.dig(None, 'a'))
        self.assertIsNone(h.dig({'a': [1]}, 'a', 'b'))
        self.assertEqual(h.dig({'a': 1}), {'a': 1})

    def test_as_float(self):
        self.assertEqual([h.as_float(v) for v in ('12.5', 3, None, '', 'x', [])], [12.5, 3.0, None, None, None, None])

    def test_safe_percent(self):
        self.assertEqual([h.safe_percent(v) for v in (None, '', '97', '97.1234567', 100, '100.0')],
                         ['', '', '97', '97.12345', '100', '100.0'])
        self.assertEqual([h.safe_percent(v) for v in ('1000', '-1', '9e1', '50 %', '{u}', True)], ['unknown'] * 6)

    def test_tag_map(self):
        self.assertEqual(h.tag_map({'Tags': [{'Key': 'a', 'Value': '1'}, {'Key': 'b'}]}), {'a': '1', 'b': ''})
        self.assertEqual(h.tag_map({}), {})
        self.assertEqual(h.tag_map({'Tags': None}), {})


class FailExecutionTest(unittest.TestCase):
    def test_ends_the_execution_naming_the_document_and_the_execution(self):
        spec = importlib.util.spec_from_file_location('fail_execution', os.path.join(HERE, 'fail-execution.py'))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        setattr(module, 'DOCUMENT', 'ExpandVolume')
        with self.assertRaises(Exception) as raised:
            module.fail({'execution': 'e-1'}, None)
        self.assertEqual(str(raised.exception), 'ExpandVolume failed; see the first failed step of execution e-1')


class TextFieldsTest(unittest.TestCase):
    def test_named_fields_as_text_in_the_order_asked(self):
        fields = h.text_fields({'b': 2, 'a': True, 'c': None, 'x': 'not asked'}, 'a', 'b', 'c')
        self.assertEqual(fields, {'a': 'true', 'b': '2', 'c': ''})
        self.assertEqual(list(fields), ['a', 'b', 'c'])

    def test_a_missing_field_is_empty_text(self):
        self.assertEqual(h.text_fields({'a': 0}, 'a', 'gone'), {'a': '0', 'gone': ''})

    def test_not_an_object_gives_empty_text_for_every_field(self):
        for obj in (None, 'text', ['a'], 3):
            self.assertEqual(h.text_fields(obj, 'a', 'b'), {'a': '', 'b': ''})

    def test_no_keys_no_fields(self):
        self.assertEqual(h.text_fields({'a': 1}), {})


if __name__ == '__main__':
    unittest.main()
