"""The API model's readers: SAM/CloudFormation templates (with their YAML loader and parameter
overrides) and route files. Pure: files in tmp_path, no processes, no network."""

import datetime
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from wsctl import names
from wsctl.apispec import cfn_yaml
from wsctl.apispec.model import Authorizer, Route
from wsctl.apispec.routefile import load_spec
from wsctl.apispec.intrinsics import parse_parameter_overrides
from wsctl.apispec.template import load_template
from wsctl.errors import UsageError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROJECTS = FIXTURES / "projects"

# One WebSocket API whose $connect route reaches function Fn (code in ./src).
BASE = """\
Resources:
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  ConnectRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties: {ApiId: !Ref Api, RouteKey: $connect, Target: !Sub 'integrations/${ConnectInteg}'}
  ConnectInteg:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: app.handler
      Runtime: python3.12
"""


def write(tmp_path: Path, text: str, folders=("src",)) -> str:
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def load(tmp_path, resources="", sections="", fn="", overrides=None, **kwargs):
    """BASE plus extra resources, top-level sections and Fn properties (YAML, unindented)."""
    def block(text, indent=""):
        text = textwrap.indent(textwrap.dedent(text), indent)
        return text if text.endswith("\n") or not text else text + "\n"

    text = BASE + block(fn, " " * 6) + block(resources, "  ") + block(sections)
    return load_template(write(tmp_path, text), overrides, **kwargs)


def env(tmp_path, variables: str, sections="", resources="", **kwargs) -> dict:
    """Fn's resolved Environment.Variables, given as YAML."""
    fn = "Environment:\n  Variables:\n" + textwrap.indent(textwrap.dedent(variables), "    ")
    spec = load(tmp_path, resources, sections, fn, **kwargs)
    return spec.function("Fn").environment


def error(tmp_path, *args, **kwargs) -> str:
    with pytest.raises(UsageError) as raised:
        load(tmp_path, *args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


# -- the YAML loader ------------------------------------------------------------------------------

def test_short_tags_become_long_forms():
    doc = cfn_yaml.load(textwrap.dedent("""\
        ref: !Ref Thing
        cond: !Condition IsProd
        att: !GetAtt Res.Attr.Deep
        sub: !Sub "x-${AWS::Region}"
        join: !Join [",", [a, b]]
        select: !Select [0, !GetAZs ""]
        split: !Split [",", "a,b"]
        if: !If [IsProd, a, !Ref AWS::NoValue]
        eq: !Equals [a, b]
        all: !And [!Condition A, !Or [!Condition B, !Not [!Condition C]]]
        map: !FindInMap [M, k1, k2]
        b64: !Base64 text
        imp: !ImportValue other-export
        cidr: !Cidr ["10.0.0.0/16", 2, 8]
        """), "t.yaml")
    assert doc["ref"] == {"Ref": "Thing"}
    assert doc["cond"] == {"Condition": "IsProd"}
    assert doc["att"] == {"Fn::GetAtt": ["Res", "Attr.Deep"]}  # the first dot only
    assert doc["sub"] == {"Fn::Sub": "x-${AWS::Region}"}
    assert doc["join"] == {"Fn::Join": [",", ["a", "b"]]}
    assert doc["select"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert doc["split"] == {"Fn::Split": [",", "a,b"]}
    assert doc["if"] == {"Fn::If": ["IsProd", "a", {"Ref": "AWS::NoValue"}]}
    assert doc["eq"] == {"Fn::Equals": ["a", "b"]}
    assert doc["all"] == {"Fn::And": [{"Condition": "A"},
                                      {"Fn::Or": [{"Condition": "B"}, {"Fn::Not": [{"Condition": "C"}]}]}]}
    assert doc["map"] == {"Fn::FindInMap": ["M", "k1", "k2"]}
    assert doc["b64"] == {"Fn::Base64": "text"}
    assert doc["imp"] == {"Fn::ImportValue": "other-export"}
    assert doc["cidr"] == {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}


def test_nested_tags_survive_and_dates_stay_strings():
    doc = cfn_yaml.load(textwrap.dedent("""\
        AWSTemplateFormatVersion: 2010-09-09
        att: !GetAtt [Res, !Ref AttrName]
        sub: !Sub ["${A}-x", {A: !Ref P}]
        """), "t.yaml")
    assert doc["AWSTemplateFormatVersion"] == "2010-09-09"
    assert doc["att"] == {"Fn::GetAtt": ["Res", {"Ref": "AttrName"}]}
    assert doc["sub"] == {"Fn::Sub": ["${A}-x", {"A": {"Ref": "P"}}]}
    # nothing registered on the global SafeLoader
    assert yaml.safe_load("d: 2010-09-09") == {"d": datetime.date(2010, 9, 9)}
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("a: !Ref b")


def test_json_templates_load():
    assert cfn_yaml.load('{"a": {"Fn::GetAtt": ["R", "Arn"]}}', "t.json") == {"a": {"Fn::GetAtt": ["R", "Arn"]}}
    with pytest.raises(UsageError, match=r"^t.json: line 2: bad JSON: "):
        cfn_yaml.load('{"a": 1,\n "b": }', "t.json")


@pytest.mark.parametrize("text, expected", [
    ("a: 1\nb: [1\n", "bad YAML"),
    ("a: 1\na: 2\n", "line 2: bad YAML: duplicate key 'a'"),
    ("x: 1\natt: !GetAtt NoDot\n", "line 2: bad YAML: !GetAtt 'NoDot' needs the form Resource.Attribute"),
])
def test_yaml_errors_are_one_line(text, expected):
    with pytest.raises(UsageError) as raised:
        cfn_yaml.load(text, "t.yaml")
    assert str(raised.value).startswith("t.yaml: ") and expected in str(raised.value)
    assert "\n" not in str(raised.value)


# -- parameter overrides ---------------------------------------------------------------------------

def test_parameter_override_forms():
    assert parse_parameter_overrides(["TableName=chat"]) == {"TableName": "chat"}
    assert parse_parameter_overrides(["A=1 B='two words' C=\"x=y,z\"", "D="]) == \
        {"A": "1", "B": "two words", "C": "x=y,z", "D": ""}
    assert parse_parameter_overrides(
        ["ParameterKey=KeyPairName,ParameterValue=MyKey ParameterKey=Size,ParameterValue=a,b"]) == \
        {"KeyPairName": "MyKey", "Size": "a,b"}
    assert parse_parameter_overrides(["A=1", "A=2"]) == {"A": "2"}  # the last one wins
    assert parse_parameter_overrides([]) == {}


@pytest.mark.parametrize("value", ["novalue", "=x", "ParameterKey=A", "ParameterKey=A,Value=b", "A='unclosed",
                                   "", "bad-key=1"])
def test_malformed_parameter_overrides(value):
    with pytest.raises(UsageError) as raised:
        parse_parameter_overrides([value])
    assert "--parameter-overrides" in str(raised.value) and "\n" not in str(raised.value)


# -- parameters, pseudo parameters, intrinsics -----------------------------------------------------

PARAMS = """\
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Size: {Type: Number, Default: 3}
  Zones: {Type: CommaDelimitedList, Default: "a, b,c"}
"""


def test_parameters_and_pseudo_parameters(tmp_path):
    variables = env(tmp_path, """\
        ENV: !Ref Env
        SIZE: !Ref Size
        ZONE: !Select [1, !Ref Zones]
        REGION: !Ref AWS::Region
        ACCOUNT: !Ref AWS::AccountId
        STACK: !Ref AWS::StackName
        PARTITION: !Ref AWS::Partition
        SUFFIX: !Ref AWS::URLSuffix
        STACK_ID: !Ref AWS::StackId
        """, PARAMS)
    assert variables == {"ENV": "dev", "SIZE": "3", "ZONE": "b", "REGION": "us-east-1", "ACCOUNT": "123456789012",
                         "STACK": "local", "PARTITION": "aws", "SUFFIX": "amazonaws.com",
                         "STACK_ID": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/"
                                     "51af3dc0-da77-11e4-872e-1234567db123"}


def test_region_account_stack_and_china_partition(tmp_path):
    variables = env(tmp_path, """\
        ARN: !GetAtt Fn.Arn
        PARTITION: !Ref AWS::Partition
        SUFFIX: !Ref AWS::URLSuffix
        STACK: !Ref AWS::StackName
        """, region="cn-north-1", account_id="999999999999", stack_name="chat")
    assert variables == {"ARN": "arn:aws-cn:lambda:cn-north-1:999999999999:function:Fn", "PARTITION": "aws-cn",
                         "SUFFIX": "amazonaws.com.cn", "STACK": "chat"}


def test_parameter_overrides_apply(tmp_path):
    variables = env(tmp_path, "ENV: !Ref Env\nZONE: !Select [0, !Ref Zones]\n", PARAMS,
                    overrides={"Env": "prod", "Zones": "x,y"})
    assert variables == {"ENV": "prod", "ZONE": "x"}


def test_parameter_override_errors(tmp_path):
    message = error(tmp_path, sections=PARAMS, overrides={"Nope": "1"})
    assert "parameter override 'Nope'" in message and "Env" in message
    message = error(tmp_path, sections=PARAMS, overrides={"Env": "staging"},
                    fn="Environment: {Variables: {ENV: !Ref Env}}")
    assert "Parameters.Env" in message and "AllowedValues" in message


def test_parameter_without_default_is_an_error_only_where_needed(tmp_path):
    sections = "Parameters:\n  Needed: {Type: String}\n"
    message = error(tmp_path, sections=sections, fn="Environment: {Variables: {X: !Ref Needed}}")
    assert "Fn.Environment.Variables.X" in message and "'Needed'" in message and "no Default" in message
    # not used by anything the emulator reads: fine
    spec = load(tmp_path, "Bucket:\n  Type: AWS::S3::Bucket\n  Properties: {BucketName: !Ref Needed}\n", sections)
    assert "Bucket (AWS::S3::Bucket)" in spec.not_emulated
    # and an override fills it in
    spec = load(tmp_path, sections=sections, fn="Environment: {Variables: {X: !Ref Needed}}",
                overrides={"Needed": "yes"})
    assert spec.function("Fn").environment == {"X": "yes"}


def test_sub_forms(tmp_path):
    variables = env(tmp_path, """\
        PLAIN: !Sub "${AWS::Region}-${Env}"
        ESCAPE: !Sub "${!Literal}-${Env}"
        ATTR: !Sub "${Table.Arn}"
        VARS: !Sub ["${Name}/${Arn}", {Name: !Ref Env, Arn: !GetAtt Fn.Arn}]
        LONG:
          Fn::Sub: "${AWS::AccountId}"
        """, PARAMS, "Table:\n  Type: AWS::DynamoDB::Table\n  Properties:\n    TableName: chat\n"
                     "    KeySchema: [{AttributeName: id, KeyType: HASH}]\n"
                     "    AttributeDefinitions: [{AttributeName: id, AttributeType: S}]\n")
    assert variables == {"PLAIN": "us-east-1-dev", "ESCAPE": "${Literal}-dev",
                         "ATTR": "arn:aws:dynamodb:us-east-1:123456789012:table/chat",
                         "VARS": "dev/arn:aws:lambda:us-east-1:123456789012:function:Fn",
                         "LONG": "123456789012"}


def test_join_select_split_findinmap_base64_getazs_cidr(tmp_path):
    sections = PARAMS + textwrap.dedent("""\
        Mappings:
          Stages:
            dev: {Level: debug, Size: 1}
            prod: {Level: warn, Size: 5}
        """)
    variables = env(tmp_path, """\
        JOIN: !Join ["-", [a, !Ref Env, 7, true]]
        SELECT: !Select ["1", [x, y, z]]
        SPLIT: !Select [2, !Split [",", "p,q,r"]]
        JOIN_SPLIT: !Join ["+", !Split [",", "1,2"]]
        MAP: !FindInMap [Stages, !Ref Env, Level]
        MAP_NUMBER: !FindInMap [Stages, prod, Size]
        B64: !Base64 hello
        AZ: !Select [0, !GetAZs ""]
        CIDR: !Select [1, !Cidr ["10.0.0.0/16", 3, 8]]
        """, sections)
    assert variables == {"JOIN": "a-dev-7-true", "SELECT": "y", "SPLIT": "r", "JOIN_SPLIT": "1+2", "MAP": "debug",
                         "MAP_NUMBER": "5", "B64": "aGVsbG8=", "AZ": "us-east-1a", "CIDR": "10.0.1.0/24"}


def test_intrinsic_errors_name_resource_and_property(tmp_path):
    message = error(tmp_path, fn="Environment: {Variables: {X: !Ref Nope}}")
    assert "Fn.Environment.Variables.X" in message and "'Nope'" in message
    message = error(tmp_path, fn="Environment: {Variables: {X: !GetAtt Ghost.Arn}}")
    assert "Fn.Environment.Variables.X" in message and "'Ghost'" in message
    message = error(tmp_path, fn="Environment: {Variables: {X: !FindInMap [M, a, b]}}",
                    sections="Mappings: {M: {a: {}}}")
    assert "Fn.Environment.Variables.X" in message and "'b'" in message
    message = error(tmp_path, fn="Environment: {Variables: {X: !Select [5, [a]]}}")
    assert "Fn.Environment.Variables.X" in message and "out of range" in message
    message = error(tmp_path, fn="Environment: {Variables: {X: !ImportValue shared-table}}")
    assert "Fn.Environment.Variables.X" in message and "Fn::ImportValue" in message
    message = error(tmp_path, fn="Environment: {Variables: {X: [a, list]}}")
    assert "Fn.Environment.Variables.X" in message and "string" in message


def test_refs_to_modeled_and_unmodeled_resources(tmp_path):
    resources = """\
        Named:
          Type: AWS::Lambda::Function
          Properties: {FunctionName: !Sub "${AWS::StackName}-named", Code: src, Handler: index.handler,
                       Runtime: nodejs20.x, Role: !GetAtt Role.Arn}
        Role: {Type: AWS::IAM::Role, Properties: {AssumeRolePolicyDocument: {}}}
        Table:
          Type: AWS::Serverless::SimpleTable
        Bucket: {Type: AWS::S3::Bucket}
        Queue: {Type: AWS::SQS::Queue}
        """
    variables = env(tmp_path, """\
        NAMED: !Ref Named
        NAMED_ARN: !GetAtt Named.Arn
        SELF: !Ref Fn
        TABLE: !Ref Table
        STREAM: !GetAtt Table.StreamArn
        BUCKET: !Ref Bucket
        BUCKET_ARN: !GetAtt Bucket.Arn
        QUEUE_URL: !GetAtt Queue.QueueUrl
        API: !GetAtt Api.ApiEndpoint
        """, resources=resources)
    assert variables == {
        "NAMED": "local-named", "NAMED_ARN": "arn:aws:lambda:us-east-1:123456789012:function:local-named",
        "SELF": "Fn", "TABLE": "Table",
        "STREAM": "arn:aws:dynamodb:us-east-1:123456789012:table/Table/stream/1970-01-01T00:00:00.000",
        "BUCKET": "Bucket", "BUCKET_ARN": "arn:aws:s3:us-east-1:123456789012:Bucket",
        "QUEUE_URL": "Queue.QueueUrl",
        "API": "wss://%s.execute-api.us-east-1.amazonaws.com" % names.local_api_id("local")}  # the emulator's id


def test_environment_values_become_strings(tmp_path):
    assert env(tmp_path, "N: 5\nF: 1.5\nT: true\nFLAG: false\nS: text\n") == \
        {"N": "5", "F": "1.5", "T": "true", "FLAG": "false", "S": "text"}
    message = error(tmp_path, fn="Environment: {Variables: {NO: x}}")  # YAML 1.1 reads NO as false
    assert "Fn.Environment.Variables" in message and "quote it" in message


# -- conditions --------------------------------------------------------------------------------------

CONDITIONS = PARAMS + """\
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  Big: !Equals [!Ref Size, 3]
  DevAndBig: !And [!Condition IsDev, !Condition Big]
  ProdOrBig: !Or [!Condition IsProd, !Condition Big]
  Never: !And [!Condition IsProd, !Condition IsDev]
"""


def test_conditions_and_fn_if(tmp_path):
    fn = """\
        MemorySize: !If [IsProd, 1024, 256]
        Environment:
          Variables:
            DEV_AND_BIG: !If [DevAndBig, yes-it-is, no]
            PROD_OR_BIG: !If [ProdOrBig, "1", "0"]
            DROPPED: !If [IsProd, kept, !Ref AWS::NoValue]
            NESTED: !Join [",", [a, !If [Never, b, !Ref AWS::NoValue], c]]
        """
    spec = load(tmp_path, fn=fn, sections=CONDITIONS)
    function = spec.function("Fn")
    assert function.memory_mb == 256
    assert function.environment == {"DEV_AND_BIG": "yes-it-is", "PROD_OR_BIG": "1", "NESTED": "a,c"}
    function = load(tmp_path, fn=fn, sections=CONDITIONS, overrides={"Env": "prod"}).function("Fn")
    assert function.memory_mb == 1024 and function.environment["DROPPED"] == "kept"


def test_resource_conditions(tmp_path):
    resources = """\
        ProdTable:
          Type: AWS::Serverless::SimpleTable
          Condition: IsProd
        ProdBucket:
          Type: AWS::S3::Bucket
          Condition: IsProd
        """
    spec = load(tmp_path, resources, CONDITIONS)
    assert spec.tables == () and spec.not_emulated == ()
    spec = load(tmp_path, resources, CONDITIONS, overrides={"Env": "prod"})
    assert [t.name for t in spec.tables] == ["ProdTable"] and spec.not_emulated == ("ProdBucket (AWS::S3::Bucket)",)
    message = error(tmp_path, resources, CONDITIONS, fn="Environment: {Variables: {T: !Ref ProdTable}}")
    assert "Fn.Environment.Variables.T" in message and "'ProdTable'" in message and "IsProd" in message
    message = error(tmp_path, "B: {Type: AWS::S3::Bucket, Condition: Nope}\n", CONDITIONS)
    assert "B.Condition" in message and "'Nope'" in message


def test_only_needed_values_must_resolve(tmp_path):
    resources = """\
        Bucket:
          Type: AWS::S3::Bucket
          Properties:
            BucketName: !ImportValue somewhere-else
            Tags: [{Key: a, Value: !GetAtt Nowhere.Arn}]
        """
    sections = "Outputs:\n  Broken: {Value: !Ref AlsoNowhere}\n"
    fn = "Policies:\n  - Statement: [{Effect: Allow, Resource: !Sub 'arn:${Missing}'}]\n"
    spec = load(tmp_path, resources, sections, fn)
    assert spec.not_emulated == ("Bucket (AWS::S3::Bucket)",)


# -- functions -------------------------------------------------------------------------------------------

def test_globals_merge_local_values_win(tmp_path):
    sections = """\
        Globals:
          Function:
            Runtime: nodejs20.x
            Timeout: 10
            MemorySize: 512
            Environment:
              Variables: {SHARED: g, OVERRIDDEN: global}
        """
    fn = """\
        MemorySize: 1024
        ReservedConcurrentExecutions: 4
        Environment:
          Variables: {OVERRIDDEN: local, OWN: o}
        """
    text = BASE.replace("      Runtime: python3.12\n", "") + textwrap.indent(textwrap.dedent(fn), " " * 6)
    function = load_template(write(tmp_path, text + textwrap.dedent(sections))).function("Fn")
    assert function.runtime == "nodejs20.x" and function.language == "node"
    assert (function.timeout_s, function.memory_mb, function.max_environments) == (10.0, 1024, 4)
    assert function.environment == {"SHARED": "g", "OVERRIDDEN": "local", "OWN": "o"}
    assert function.code_dir == (tmp_path / "src").resolve()


def test_function_defaults(tmp_path):
    function = load(tmp_path, fn="ReservedConcurrentExecutions: 50").function("Fn")
    assert (function.timeout_s, function.memory_mb, function.max_environments) == (3.0, 128, 10)
    assert function.environment == {} and function.handler == "app.handler"


def test_lambda_function_with_local_code(tmp_path):
    text = BASE.replace("${Fn.Arn}", "${Plain.Arn}") + textwrap.indent(textwrap.dedent("""\
          Plain:
            Type: AWS::Lambda::Function
            Properties:
              FunctionName: plain-fn
              Code: src
              Handler: bootstrap
              Runtime: provided.al2023
              Timeout: 20
              MemorySize: 2048
              Environment: {Variables: {MODE: fast}}
        """), "  ")
    spec = load_template(write(tmp_path, text))
    assert spec.routes == (Route("$connect", False, "plain-fn"),)
    function = spec.function("plain-fn")
    assert (function.runtime, function.handler, function.timeout_s, function.memory_mb) == \
        ("provided.al2023", "bootstrap", 20.0, 2048)
    assert function.environment == {"MODE": "fast"} and function.language == "provided"
    assert [f.name for f in spec.functions] == ["plain-fn", "Fn"]  # Fn: not routed, but runnable


@pytest.mark.parametrize("code, expected", [
    ("{S3Bucket: b, S3Key: k.zip}", "Plain.Code points at S3"),
    ("{ZipFile: 'exports.handler = async () => 1'}", "Plain.Code.ZipFile inline code is not supported"),
    ("{ImageUri: 1.dkr.ecr/x:latest}", "Plain.Code.ImageUri container images"),
])
def test_lambda_function_code_that_is_not_local(tmp_path, code, expected):
    text = BASE.replace("${Fn.Arn}", "${Plain.Arn}") + \
        "  Plain:\n    Type: AWS::Lambda::Function\n    Properties: {Code: %s, Handler: index.handler, " \
        "Runtime: nodejs20.x}\n" % code
    with pytest.raises(UsageError) as raised:
        load_template(write(tmp_path, text))
    assert expected in str(raised.value)


@pytest.mark.parametrize("fn, expected", [
    ("InlineCode: 'def handler(e, c): pass'", "Fn.InlineCode inline code is not supported by the local emulator; "
                                              "put it in a folder and use CodeUri"),
    ("CodeUri: s3://bucket/code.zip", "Fn.CodeUri points at S3"),
    ("CodeUri: {Bucket: b, Key: k}", "Fn.CodeUri points at S3"),
    ("PackageType: Image", "Fn.PackageType"),
    ("Timeout: soon", "Fn.Timeout must be a positive number"),
    ("ReservedConcurrentExecutions: 0", "Fn.ReservedConcurrentExecutions is 0"),
])
def test_function_errors(tmp_path, fn, expected):
    text = BASE.replace("      CodeUri: src\n", "") + "      " + fn + "\n"
    with pytest.raises(UsageError) as raised:
        load_template(write(tmp_path, text))
    assert expected in str(raised.value)


def test_unrouted_function_that_cannot_run_is_listed_not_fatal(tmp_path):
    spec = load(tmp_path, "Worker:\n  Type: AWS::Serverless::Function\n"
                          "  Properties: {CodeUri: src, Handler: a.B::c, Runtime: java21}\n")
    assert [f.name for f in spec.functions] == ["Fn"]
    assert len(spec.not_emulated) == 1 and spec.not_emulated[0].startswith("Worker (AWS::Serverless::Function: ")
    assert "Worker.Runtime 'java21'" in spec.not_emulated[0]


# -- tables ----------------------------------------------------------------------------------------------

def test_dynamodb_table(tmp_path):
    resources = """\
        Table:
          Type: AWS::DynamoDB::Table
          Properties:
            TableName: !Sub "${AWS::StackName}-items"
            AttributeDefinitions:
              - {AttributeName: pk, AttributeType: S}
              - {AttributeName: sk, AttributeType: N}
              - {AttributeName: gsi, AttributeType: S}
            KeySchema: [{AttributeName: pk, KeyType: HASH}, {AttributeName: sk, KeyType: RANGE}]
            GlobalSecondaryIndexes:
              - IndexName: byGsi
                KeySchema: [{AttributeName: gsi, KeyType: HASH}]
                Projection: {ProjectionType: ALL}
                ContributorInsightsSpecification: {Enabled: true}
            TimeToLiveSpecification: {AttributeName: expires, Enabled: true}
            StreamSpecification: {StreamViewType: NEW_IMAGE}
            SSESpecification: {SSEEnabled: true}
            PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
            Tags: [{Key: team, Value: chat}]
        Provisioned:
          Type: AWS::DynamoDB::Table
          Properties:
            AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
            KeySchema: [{AttributeName: id, KeyType: HASH}]
            ProvisionedThroughput: {ReadCapacityUnits: "5", WriteCapacityUnits: 2}
            TimeToLiveSpecification: {AttributeName: ttl, Enabled: false}
        """
    table, provisioned = load(tmp_path, resources).tables
    assert table.name == "local-items" and table.ttl_attribute == "expires"
    assert table.create_args == {
        "TableName": "local-items",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"},
                                 {"AttributeName": "gsi", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [{"IndexName": "byGsi", "KeySchema": [{"AttributeName": "gsi", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "ALL"}}],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}
    assert provisioned.name == "Provisioned" and provisioned.ttl_attribute is None
    assert provisioned.create_args["BillingMode"] == "PROVISIONED"
    assert provisioned.create_args["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2}


def test_table_errors(tmp_path):
    message = error(tmp_path, "T:\n  Type: AWS::DynamoDB::Table\n"
                              "  Properties: {AttributeDefinitions: [{AttributeName: id, AttributeType: S}]}\n")
    assert "T.KeySchema is missing" in message
    message = error(tmp_path, "T:\n  Type: AWS::Serverless::SimpleTable\n"
                              "  Properties: {PrimaryKey: {Name: id, Type: Text}}\n")
    assert "T.PrimaryKey.Type" in message and "'Text'" in message


def test_simple_table(tmp_path):
    resources = """\
        Plain: {Type: AWS::Serverless::SimpleTable}
        Counters:
          Type: AWS::Serverless::SimpleTable
          Properties:
            TableName: counters
            PrimaryKey: {Name: n, Type: Number}
            ProvisionedThroughput: {ReadCapacityUnits: 1, WriteCapacityUnits: 1}
            SSESpecification: {SSEEnabled: true}
        """
    plain, counters = load(tmp_path, resources).tables
    assert plain.name == "Plain" and plain.create_args == {
        "TableName": "Plain", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}
    assert counters.create_args == {
        "TableName": "counters", "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "n", "AttributeType": "N"}], "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}


# -- the API: routes, responses, authorizer, stage, not emulated ----------------------------------------

def route(name, key, integration, extra=""):
    return ("%s:\n  Type: AWS::ApiGatewayV2::Route\n  Properties: {ApiId: !Ref Api, RouteKey: '%s', "
            "Target: !Join [/, [integrations, !Ref %s]]%s}\n" % (name, key, integration, extra))


def integration(name, function, extra=""):
    return ("%s:\n  Type: AWS::ApiGatewayV2::Integration\n  Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, "
            "IntegrationUri: !Sub 'arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            "${%s.Arn}/invocations'%s}\n" % (name, function, extra))


def test_routes_two_way_timeouts_and_stage(tmp_path):
    resources = (
        route("EchoRoute", "echo", "EchoInteg", ", RouteResponseSelectionExpression: $default")
        + integration("EchoInteg", "Fn", ", TimeoutInMillis: 5000")
        + route("AskRoute", "ask", "AskInteg")
        + integration("AskInteg", "Fn", ", TimeoutInMillis: 10000")
        + "AskResponse:\n  Type: AWS::ApiGatewayV2::RouteResponse\n"
          "  Properties: {ApiId: !Ref Api, RouteId: !Ref AskRoute, RouteResponseKey: $default}\n"
        + route("DefaultRoute", "$default", "MockInteg")
        + "MockInteg:\n  Type: AWS::ApiGatewayV2::Integration\n  Properties: {ApiId: !Ref Api, IntegrationType: MOCK}\n"
        + "Stage:\n  Type: AWS::ApiGatewayV2::Stage\n  Properties: {ApiId: !Ref Api, StageName: !Sub '${Env}stage'}\n"
        + "Deployment: {Type: AWS::ApiGatewayV2::Deployment, Properties: {ApiId: !Ref Api}}\n"
        + "Permission: {Type: AWS::Lambda::Permission, Properties: {FunctionName: !Ref Fn}}\n"
        + "LogGroup: {Type: AWS::Logs::LogGroup}\n")
    spec = load(tmp_path, resources, PARAMS)
    assert spec.routes == (Route("$connect", False, "Fn"), Route("echo", True, "Fn"), Route("ask", True, "Fn"),
                           Route("$default", unserved="integration type MOCK"))  # declared: answered, not run
    assert spec.keys == ("$connect", "echo", "ask", "$default")
    # $connect has no TimeoutInMillis: API Gateway's 29000 is the largest
    assert spec.integration_timeout_ms == 29000
    assert spec.stage == "devstage" and spec.route_selection_expression == "$request.body.action"
    assert spec.not_emulated == ("DefaultRoute (route $default: integration type MOCK)",)
    assert (spec.auth, spec.authorizer, spec.bundled) == ("none", None, False)
    assert spec.origin == "template " + str(tmp_path / "template.yaml")
    assert [f.name for f in spec.functions] == ["Fn"]


def test_largest_integration_timeout(tmp_path):
    text = BASE.replace("      IntegrationType: AWS_PROXY\n", "      IntegrationType: AWS_PROXY\n"
                                                              "      TimeoutInMillis: 6000\n")
    text += textwrap.indent(route("EchoRoute", "echo", "EchoInteg") + integration("EchoInteg", "Fn",
                                                                                ", TimeoutInMillis: 9000"), "  ")
    assert load_template(write(tmp_path, text)).integration_timeout_ms == 9000


def test_request_authorizer_on_connect(tmp_path):
    text = BASE.replace("RouteKey: $connect,", "RouteKey: $connect, AuthorizationType: CUSTOM, "
                                               "AuthorizerId: !Ref Auth,") + textwrap.indent(textwrap.dedent("""\
          Auth:
            Type: AWS::ApiGatewayV2::Authorizer
            Properties:
              ApiId: !Ref Api
              Name: TokenAuth
              AuthorizerType: REQUEST
              AuthorizerUri: !Join
                - ""
                - [!Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/",
                   !GetAtt AuthFn.Arn, /invocations]
              IdentitySource: [route.request.querystring.token]
          AuthFn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src, Handler: auth.handler, Runtime: nodejs22.x, FunctionName: chat-auth}
        """), "  ")
    spec = load_template(write(tmp_path, text))
    assert spec.authorizer == Authorizer("chat-auth", ("route.request.querystring.token",), "TokenAuth")
    assert spec.auth == "jwt"
    assert [f.name for f in spec.functions] == ["Fn", "chat-auth"]


def test_authorizer_errors(tmp_path):
    text = BASE.replace("RouteKey: $connect,", "RouteKey: $connect, AuthorizationType: CUSTOM, AuthorizerId: Nope,")
    with pytest.raises(UsageError, match="ConnectRoute.AuthorizerId names authorizer 'Nope'"):
        load_template(write(tmp_path, text))
    resources = route("EchoRoute", "echo", "ConnectInteg", ", AuthorizationType: CUSTOM, AuthorizerId: x")
    assert "EchoRoute.AuthorizationType CUSTOM is only allowed on the $connect route" in error(tmp_path, resources)


def test_not_emulated_listing(tmp_path):
    resources = """\
        Bucket: {Type: AWS::S3::Bucket}
        Topic: {Type: AWS::SNS::Topic}
        HttpApi: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: HTTP}}
        HttpRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref HttpApi, RouteKey: GET /x}}
        Role: {Type: AWS::IAM::Role}
        Policy: {Type: AWS::IAM::Policy}
        Version: {Type: AWS::Lambda::Version, Properties: {FunctionName: !Ref Fn}}
        Alias: {Type: AWS::Lambda::Alias, Properties: {FunctionName: !Ref Fn, Name: live}}
        Queue: {Type: AWS::SQS::Queue}
        """
    spec = load(tmp_path, resources)
    assert spec.not_emulated == ("HttpApi (AWS::ApiGatewayV2::Api HTTP)", "Bucket (AWS::S3::Bucket)",
                                 "Topic (AWS::SNS::Topic)", "Queue (AWS::SQS::Queue)")
    assert spec.keys == ("$connect",)


def test_integration_through_an_alias(tmp_path):
    text = BASE.replace("${Fn.Arn}", "${Live}") + \
        "  Live: {Type: AWS::Lambda::Alias, Properties: {FunctionName: !Ref Fn, Name: live, FunctionVersion: '1'}}\n"
    assert load_template(write(tmp_path, text)).routes == (Route("$connect", False, "Fn"),)


def test_sam_websocket_api(tmp_path):
    text = textwrap.dedent("""\
        Transform: AWS::Serverless-2016-10-31
        Globals:
          WebSocketApi:
            RouteSelectionExpression: $request.body.type
          Function: {CodeUri: src, Runtime: python3.13}
        Resources:
          Chat:
            Type: AWS::Serverless::WebSocketApi
            Properties:
              Routes:
                $connect: {FunctionArn: !GetAtt Connect.Arn}
                $disconnect: {FunctionArn: !GetAtt Connect.Arn}
                send:
                  FunctionArn: !GetAtt Send.Arn
                  IntegrationTimeout: 12000
                  RouteResponseSelectionExpression: $default
              Auth:
                AuthType: CUSTOM
                AuthArn: !GetAtt Authorize.Arn
                IdentitySource: [route.request.header.Authorization]
          Connect: {Type: AWS::Serverless::Function, Properties: {Handler: app.connect}}
          Send: {Type: AWS::Serverless::Function, Properties: {Handler: app.send}}
          Authorize: {Type: AWS::Serverless::Function, Properties: {Handler: app.auth}}
        """)
    spec = load_template(write(tmp_path, text))
    assert spec.routes == (Route("$connect", False, "Connect"), Route("$disconnect", False, "Connect"),
                           Route("send", True, "Send"))
    assert spec.route_selection_expression == "$request.body.type"
    assert spec.authorizer == Authorizer("Authorize", ("route.request.header.Authorization",), "ChatConnectAuthorizer")
    assert spec.auth == "jwt" and spec.stage == "default" and spec.integration_timeout_ms == 29000
    assert [f.name for f in spec.functions] == ["Connect", "Send", "Authorize"]
    assert spec.not_emulated == ()
    text = text.replace("      Auth:\n", "      StageName: live\n      Auth:\n")
    text = text.replace("AuthType: CUSTOM", "AuthType: AWS_IAM").replace("        AuthArn: !GetAtt Authorize.Arn\n", "")
    spec = load_template(write(tmp_path, text))
    assert spec.authorizer is None and spec.stage == "live"
    assert spec.not_emulated == ("Chat (route $connect: AWS_IAM authorization)",)


@pytest.mark.parametrize("change, expected", [
    (("Target: !Sub 'integrations/${ConnectInteg}'", "Target: ConnectInteg"),
     "ConnectRoute.Target must be integrations/INTEGRATION_ID"),
    (("${Fn.Arn}/invocations", "${Fn.Arn}"), "ConnectInteg.IntegrationUri is not a Lambda function URI"),
    (("${Fn.Arn}", "${Ghost.Arn}"), "ConnectInteg.IntegrationUri names resource 'Ghost'"),
    (("RouteKey: $connect", "RouteKey: $join"), "ConnectRoute has route key '$join'"),
    (("ProtocolType: WEBSOCKET", "ProtocolType: HTTP"), "has no WebSocket API"),
    (("ApiId: !Ref Api, RouteKey", "RouteKey"), "ConnectRoute.ApiId is missing"),
    (("      Handler: app.handler\n", ""), "Fn.Handler is missing"),
])
def test_api_errors(tmp_path, change, expected):
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(UsageError) as raised:
        load_template(write(tmp_path, text))
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_repeated_route_key_and_two_apis(tmp_path):
    message = error(tmp_path, route("Again", "$connect", "ConnectInteg"))
    assert "Again repeats route key '$connect'" in message
    message = error(tmp_path, "Other: {Type: AWS::ApiGatewayV2::Api, Properties: {ProtocolType: WEBSOCKET}}\n")
    assert "2 WebSocket APIs (Api, Other)" in message


def test_unreadable_or_not_a_template(tmp_path):
    with pytest.raises(UsageError, match="cannot read template"):
        load_template(str(tmp_path / "missing.yaml"))
    with pytest.raises(UsageError, match="not a CloudFormation template"):
        load_template(write(tmp_path, "just: a map\n"))


def test_json_template(tmp_path):
    document = cfn_yaml.load(BASE, "base")
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    (tmp_path / "src").mkdir()
    assert load_template(str(path)).routes == (Route("$connect", False, "Fn"),)


# -- the bad-template fixtures ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("bad-yaml.yaml", "bad-yaml.yaml: line 9: bad YAML: "),
    ("unknown-integration.yaml", "ConnectRoute.Target names integration 'Nope', which is not in the template"),
    ("unknown-function.yaml", "ConnectInteg.IntegrationUri names function 'Nope', which is not in the template"),
    ("bad-runtime.yaml", "ConnectFunction.Runtime 'java21' is not supported by the local emulator"),
    ("missing-code.yaml", "ConnectFunction.CodeUri code folder 'src/connect/' does not exist"),
    ("unresolvable-parameter.yaml", "ConnectFunction.Environment.Variables.TABLE_NAME uses parameter 'TableName', "
                                    "which has no Default"),
])
def test_bad_template_fixtures(name, expected):
    path = FIXTURES / "templates" / name
    with pytest.raises(UsageError) as raised:
        load_template(str(path))
    message = str(raised.value)
    assert message.startswith(str(path) + ": ") and expected in message and "\n" not in message
    assert raised.value.exit_code == 2


# -- the fixture projects ----------------------------------------------------------------------------------

def test_simple_chat_node_project():
    folder = PROJECTS / "simple-chat-node"
    spec = load_template(str(folder / "template.yaml"))
    assert spec.routes == (Route("$connect", False, "OnConnectFunction"),
                           Route("$disconnect", False, "OnDisconnectFunction"),
                           Route("sendmessage", False, "SendMessageFunction"))
    assert spec.route_selection_expression == "$request.body.action" and spec.stage == "Prod"
    assert [(f.name, f.code_dir) for f in spec.functions] == [
        ("OnConnectFunction", folder / "onconnect"), ("OnDisconnectFunction", folder / "ondisconnect"),
        ("SendMessageFunction", folder / "sendmessage")]
    for function in spec.functions:
        assert (function.runtime, function.handler, function.memory_mb) == ("nodejs20.x", "app.handler", 256)
        assert function.environment == {"TABLE_NAME": "simplechat_connections"}
        assert (function.code_dir / "app.mjs").is_file()
    (table,) = spec.tables
    assert table.name == "simplechat_connections"
    assert table.create_args == {"TableName": "simplechat_connections", "BillingMode": "PAY_PER_REQUEST",
                                 "AttributeDefinitions": [{"AttributeName": "connectionId", "AttributeType": "S"}],
                                 "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}]}
    assert spec.not_emulated == ("WebsiteBucket (AWS::S3::Bucket)", "ChatEventsTopic (AWS::SNS::Topic)")
    assert (spec.auth, spec.authorizer) == ("none", None)
    overridden = load_template(str(folder / "template.yaml"), parse_parameter_overrides(["TableName=other"]))
    assert overridden.tables[0].name == "other" and overridden.functions[0].environment == {"TABLE_NAME": "other"}


def test_python_chat_project():
    folder = PROJECTS / "python-chat"
    spec = load_template(str(folder / "template.yaml"))
    assert spec.keys == ("$connect", "$disconnect", "sendmessage") and spec.stage == "prod"
    assert [f.name for f in spec.functions] == ["OnConnectFunction", "OnDisconnectFunction", "SendMessageFunction"]
    for function, folder_name in zip(spec.functions, ("onconnect", "ondisconnect", "sendmessage")):
        assert function.code_dir == folder / folder_name and (function.code_dir / "app.py").is_file()
        assert (function.runtime, function.handler, function.timeout_s, function.memory_mb) == \
            ("python3.12", "app.handler", 10.0, 256)
        assert function.environment == {"TABLE_NAME": "pychat_connections"}
    (table,) = spec.tables
    assert table.name == "pychat_connections" and table.create_args["KeySchema"] == \
        [{"AttributeName": "connectionId", "KeyType": "HASH"}]
    assert spec.not_emulated == ()


# -- the route file ---------------------------------------------------------------------------------------

def test_routefile_project():
    folder = PROJECTS / "routefile-project"
    spec = load_spec(str(folder / "routes.json"))
    assert spec.routes == (Route("$connect", False, "connect"), Route("$disconnect", False, "disconnect"),
                           Route("echo", True, "echo"))
    assert [(f.name, f.code_dir, f.runtime) for f in spec.functions] == [
        (name, folder / name, "python3.12") for name in ("connect", "disconnect", "echo")]
    assert spec.tables == () and spec.auth == "none" and spec.authorizer is None


def write_routes(tmp_path, document) -> str:
    (tmp_path / "code").mkdir(exist_ok=True)
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(path)


def test_routefile_full(tmp_path):
    document = {
        "routeSelectionExpression": "$request.body.type", "stage": "dev",
        "functions": {"Main": {"runtime": "nodejs20.x", "code": "code", "handler": "app.handler",
                               "environment": {"N": 1, "B": True}, "timeout": 5, "memorySize": 256,
                               "maxEnvironments": 2},
                      "Auth": {"runtime": "python3.12", "code": "code", "handler": "auth.handler"}},
        "routes": [{"key": "$connect", "function": "Main"}, {"key": "ask", "twoWay": True, "function": "Main"}],
        "authorizer": {"function": "Auth", "identitySources": ["route.request.querystring.token"]},
        "tables": [{"TableName": "t", "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "ttlAttribute": "exp"}]}
    spec = load_spec(write_routes(tmp_path, document))
    assert spec.routes == (Route("$connect", False, "Main"), Route("ask", True, "Main"))
    main = spec.function("Main")
    assert main.environment == {"N": "1", "B": "true"}
    assert (main.timeout_s, main.memory_mb, main.max_environments) == (5.0, 256, 2)
    assert spec.authorizer == Authorizer("Auth", ("route.request.querystring.token",))
    assert spec.auth == "jwt" and spec.stage == "dev" and spec.route_selection_expression == "$request.body.type"
    (table,) = spec.tables
    assert table.ttl_attribute == "exp" and table.create_args["BillingMode"] == "PAY_PER_REQUEST"
    assert "ttlAttribute" not in table.create_args


@pytest.mark.parametrize("document, expected", [
    ("{not json", "is not valid JSON"),
    ({"routes": "x"}, 'needs a "routes" list'),
    ({"routes": [], "extra": 1}, "unknown field 'extra'"),
    ({"routes": [{"key": "a", "function": "Nope"}]}, "names function 'Nope', which is not defined"),
    ({"routes": [{"key": "$join"}]}, "reserved"),
    ({"routes": [], "functions": {"F": {"runtime": "python3.12", "handler": "a.b", "code": "missing"}}},
     "code folder"),
    ({"routes": [], "functions": {"F": {"runtime": "python3.12"}}}, "needs 'handler'"),
    ({"routes": [], "functions": {"F": {"runtime": "python3.12", "handler": "a.b", "code": "code", "timeout": 0}}},
     "timeout must be a positive number"),
])
def test_routefile_errors(tmp_path, document, expected):
    with pytest.raises(UsageError) as raised:
        load_spec(write_routes(tmp_path, document))
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_cycles_and_sam_alias(tmp_path):
    message = error(tmp_path, fn="MemorySize: !If [A, 256, 512]",
                    sections="Conditions:\n  A: !Condition B\n  B: !Condition A\n")
    assert "circular condition" in message
    message = error(tmp_path, fn="FunctionName: !Sub '${Fn.Arn}-x'")
    assert "Fn.FunctionName refers to its own name" in message
    text = BASE.replace("${Fn.Arn}", "${Fn.Alias}") + "      AutoPublishAlias: live\n"
    assert load_template(write(tmp_path, text)).routes == (Route("$connect", False, "Fn"),)
