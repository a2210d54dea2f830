"""Serverless Framework variables (wsctl/apispec/slsvars.py): the Framework's syntax and sources,
resolved lazily; what has no value is one line naming the variable and --var."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsctl.apispec import cfn_yaml
from wsctl.apispec.slsvars import MISSING, Sources, Variables, is_variable
from wsctl.errors import UsageError

SERVICE = cfn_yaml.load("""
service: chat
params:
  default: {domain: example.com}
  prod: {domain: prod.example.com}
custom:
  table: ${self:service}-${sls:stage}-connections
  timeout: ${opt:timeout, 3}
  flag: ${strToBool(${env:FLAG, 'false'})}
  nested: ${file(./config.${sls:stage}.yml):deep.value}
  whole: ${file(./config.dev.yml)}
  missing_file: ${file(./nope.yml), 'fallback'}
  chain: ${opt:region, self:provider.region, 'us-west-1'}
  quoted: ${env:NOPE, "${self:service}-default"}
  sub: !Sub "arn:${AWS::Partition}:execute-api:${AWS::Region}:${Api}/${Stage}"
  loop: ${self:custom.loop}
  domain: ${param:domain}
  region: ${aws:region}-${aws:accountId}
  number_in_text: timeout is ${self:custom.timeout}
  secret: ${ssm(us-east-1, noDecrypt):/chat/secret}
  unused: ${cf:other.Output}
provider:
  stage: ${opt:stage, 'dev'}
  region: eu-west-1
""", "serverless.yml")
FILES = {"./config.dev.yml": {"deep": {"value": "${self:custom.table}"}}}


def variables(**sources) -> Variables:
    sources.setdefault("read_file", lambda path: FILES.get(path, MISSING))
    return Variables(SERVICE, Sources(**sources), "serverless.yml")


def value(key: str, **sources):
    return variables(**sources).get(("custom", key))


def test_self_sls_opt_and_env_with_fallbacks_and_types():
    assert value("table") == "chat-dev-connections"
    assert value("table", stage="prod") == "chat-prod-connections"
    assert value("timeout") == 3 and value("timeout", given={"opt:timeout": "9"}) == "9"  # a number keeps its type
    assert value("flag") is False and value("flag", env={"FLAG": "1"}) is True
    assert value("chain") == "eu-west-1"  # the second candidate: a variable without its ${}
    assert value("quoted") == "chat-default"  # a quoted fallback holds variables too
    assert value("number_in_text") == "timeout is 3"


def test_files_are_read_through_the_callers_reader_and_resolved_against_the_service():
    assert value("nested") == "chat-dev-connections"
    assert value("whole") == {"deep": {"value": "chat-dev-connections"}}  # a map, not a string
    assert value("missing_file") == "fallback"


def test_cloudformations_sub_variables_are_left_for_the_template_engine():
    assert value("sub") == {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${Api}/${Stage}"}
    assert not is_variable("Api") and not is_variable("AWS::Region") and not is_variable("Api.ApiEndpoint")
    assert is_variable("self:service") and is_variable("file(./x.yml)") and is_variable("opt:stage, 'dev'")


def test_params_aws_and_given_values():
    assert value("domain") == "example.com" and value("domain", stage="prod") == "prod.example.com"
    assert value("region") == "us-east-1-123456789012"  # the emulator's, whatever provider.region says
    assert value("secret", given={"ssm:/chat/secret": "s3cr3t"}) == "s3cr3t"


def test_resolution_is_lazy_and_what_has_no_value_is_named_with_its_option():
    variables()  # custom.unused (a cf: variable) is never read: no error
    with pytest.raises(UsageError) as raised:
        value("secret")
    message = str(raised.value)
    assert message.startswith("serverless.yml: custom.secret: ${ssm:/chat/secret}")
    assert "--var 'ssm:/chat/secret=VALUE'" in message and "\n" not in message
    with pytest.raises(UsageError, match="refers to itself"):
        value("loop")


@given(st.text(alphabet="abc${}:,'\" ()", max_size=30))
def test_any_string_resolves_or_fails_in_one_line(text):
    try:
        result = Variables({"x": text}, Sources(), "s.yml").get(("x",))
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert result is None or isinstance(result, (str, int, float, bool, dict, list))
