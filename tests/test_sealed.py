"""Sealed for every SDK: whatever a function dials of AWS, it reaches this machine.

One emulator runs, from a project folder that vendors a broken botocore (tests/fixtures/sealed),
functions that reach DynamoDB by its public host name: Python on the runtime's boto3 with a
hard-coded https://dynamodb.us-east-1.amazonaws.com, Node on the AWS SDK for JavaScript v2
(nodejs16.x: the emulator installs it with npm, as Lambda provided it) and on v3 with a
hard-coded endpoint. Each writes and reads the emulator's DynamoDB through the front door, and
its calls to services the emulator does not serve (STS, SQS in a China region) are answered
locally. The pure parts (host names, the redirect rules in both languages) are tested directly.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from support.emulator_fixtures import Emulator, unique
from wsctl.local import awsnames
from wsctl.local.frontdoor import FrontDoor
from wsctl.local.functions import sdks

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sealed"
TABLE = "sealed-items"


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    home = tmp_path_factory.mktemp("sealed")
    routes = home / "routes.json"
    routes.write_text(json.dumps({
        "functions": {
            "py": {"runtime": "python3.12", "code": str(FIXTURES / "py"), "handler": "app.handler", "timeout": 20},
            "node-v2": {"runtime": "nodejs16.x", "code": str(FIXTURES / "node-v2"), "handler": "app.handler",
                        "timeout": 20},
            "node-v3": {"runtime": "nodejs20.x", "code": str(FIXTURES / "node-v3"), "handler": "app.handler",
                        "timeout": 20},
        },
        "routes": [{"key": "$default", "function": "py"}],
        "tables": [{"TableName": TABLE, "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}]}]}))
    # Started in the project's folder, as `wsctl local up` is: its vendored botocore/ must not reach
    # moto's server (nor any other process of wsctl's).
    instance = Emulator(home, ["--routes", str(routes)], cwd=FIXTURES)
    yield instance
    instance.stop()


def invoke(emulator, name: str, event: dict) -> dict:
    answer = emulator.lambda_client().invoke(FunctionName=name, Payload=json.dumps(event))
    payload = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") is None, payload
    return payload


def stored(emulator, key: str) -> dict:
    return emulator.dynamodb().get_item(TableName=TABLE, Key={"id": {"S": key}})["Item"]


def test_python_with_a_hard_coded_dynamodb_endpoint_reaches_the_emulators_table(sealed):
    key = unique("py")
    result = invoke(sealed, "py", {"table": TABLE, "id": key})
    assert result["item"] == {"id": {"S": key}, "by": {"S": "python"}}
    assert stored(sealed, key)["by"] == {"S": "python"}  # the emulator's DynamoDB, seen from outside
    # the runtime's boto3, at the version recorded for it, not wsctl's own
    assert result["boto3"] == sdks.PYTHON.version and "/python-sdk/" in result["boto3File"]


def test_node_on_the_sdk_v2_reaches_the_emulators_table_by_the_public_host_name(sealed):
    key = unique("v2")
    result = invoke(sealed, "node-v2", {"table": TABLE, "id": key})
    assert result["item"] == {"id": {"S": key}, "by": {"S": "node-v2"}}
    assert stored(sealed, key)["by"] == {"S": "node-v2"}
    # nodejs16.x provided v2 and only v2, installed once with npm
    assert result["sdk"] == sdks.NODE_V2.version and "/node-sdk/" in result["sdkPath"]
    assert result["v3"] == "MODULE_NOT_FOUND"


def test_node_on_the_sdk_v3_with_a_hard_coded_endpoint_reaches_the_emulators_table(sealed):
    key = unique("v3")
    result = invoke(sealed, "node-v3", {"table": TABLE, "id": key})
    assert result["item"] == {"id": {"S": key}, "by": {"S": "node-v3"}}
    assert stored(sealed, key)["by"] == {"S": "node-v3"}
    assert result["v2"] == "MODULE_NOT_FOUND"  # nodejs18.x and later provide v3 only, as on Lambda


def test_services_the_emulator_does_not_serve_are_answered_locally_whatever_the_sdk(sealed):
    python = invoke(sealed, "py", {"table": TABLE, "id": unique("py")})["refused"]
    assert python["sts"]["code"] == "NotEmulated"
    assert python["sts"]["message"].startswith("sts GetCallerIdentity is not emulated by wsctl local")
    assert python["sqs"]["code"] == "NotEmulated"  # a China region's host name (.amazonaws.com.cn) too
    assert "sqs ListQueues is not emulated" in python["sqs"]["message"]
    node = invoke(sealed, "node-v2", {"table": TABLE, "id": unique("v2")})["sts"]
    assert node["code"] == "NotEmulated" and "sts GetCallerIdentity is not emulated" in node["message"]
    assert "sealed: a function called sts GetCallerIdentity" in sealed.output()


def test_the_banner_states_the_runtimes_differences_from_lambda(sealed):
    banner = " ".join(sealed.output().replace("\u2502", " ").split())  # the panel's words, unwrapped
    assert "nodejs16.x and older are deprecated on AWS Lambda (nodejs16.x since 2024-06-12): its functions get " \
           "the AWS SDK for JavaScript v2 %s, which AWS no longer supports" % sdks.NODE_V2.version in banner
    assert "Python functions get boto3 (the AWS SDK for Python) %s after their own code" % sdks.PYTHON.version \
        in banner
    assert banner.count("nodejs18.x+ functions get the AWS SDK for JavaScript v3") == 1


# -- pure: host names and the rules the bootstraps apply ----------------------------------------------------------
@pytest.mark.parametrize("host, service, region, prefix", [
    ("dynamodb.us-east-1.amazonaws.com", "dynamodb", "us-east-1", ()),
    ("DynamoDB.EU-West-1.AmazonAWS.com.", "dynamodb", "eu-west-1", ()),
    ("abc123.execute-api.us-east-1.amazonaws.com", "execute-api", "us-east-1", ("abc123",)),
    ("sts.amazonaws.com", "sts", None, ()),
    ("sqs.cn-north-1.amazonaws.com.cn", "sqs", "cn-north-1", ()),
    ("lambda.us-gov-west-1.amazonaws.com", "lambda", "us-gov-west-1", ()),
    ("dynamodb-fips.us-east-1.amazonaws.com", "dynamodb", "us-east-1", ()),
    ("dynamodb.us-east-1.api.aws", "dynamodb", "us-east-1", ()),
    ("123456789012.ddb.us-east-1.amazonaws.com", "ddb", "us-east-1", ("123456789012",)),
    ("streams.dynamodb.us-east-1.amazonaws.com", "dynamodbstreams", "us-east-1", ()),
    ("my-bucket.s3.us-west-2.amazonaws.com", "s3", "us-west-2", ("my-bucket",)),
    ("s3-us-west-2.amazonaws.com", "s3", "us-west-2", ()),
    ("dynamodb.us-east-1.amazonaws.com:443", "dynamodb", "us-east-1", ()),
])
def test_an_aws_host_name_names_its_service_and_region(host, service, region, prefix):
    assert awsnames.parse_host(host) == awsnames.AwsHost(service, region, prefix)


@pytest.mark.parametrize("host", ["example.com", "amazonaws.com", "127.0.0.1:8080", "notamazonaws.com",
                                  "dynamodb.us-east-1.amazonaws.com.evil.example"])
def test_other_names_are_not_aws_host_names(host):
    assert awsnames.parse_host(host) is None


HOSTS = ["abc123.execute-api.us-east-1.amazonaws.com", "other.execute-api.us-east-1.amazonaws.com",
         "dynamodb.us-east-1.amazonaws.com", "ssm.eu-west-1.amazonaws.com", "lambda.us-east-1.amazonaws.com",
         "123456789012.ddb.us-east-1.amazonaws.com", "sts.amazonaws.com", "s3.cn-north-1.amazonaws.com.cn",
         "example.com", "registry.npmjs.org", "amazonaws.com.example.org"]


def _where(rules: str, host: str):
    """Where Python's bootstrap sends `host` (re.match, as it applies the rules)."""
    for pattern, target, port in json.loads(rules):
        if re.match(pattern, host):
            return "%s:%d" % (target, port)
    return None


@pytest.mark.parametrize("passthrough", [False, True])
def test_the_redirect_rules_read_alike_in_python_and_javascript(passthrough):
    """Sealed: every AWS host name goes to the front door, the API's own to the gateway, nothing else
    is touched. Passed through: only the services the emulator serves. Node's bootstrap reads the
    same rules with JavaScript's RegExp, and must decide exactly as Python's bootstrap does."""
    rules = awsnames.redirect_rules(("127.0.0.1", 1001), ("127.0.0.1", 2002),
                                    "abc123.execute-api.us-east-1.amazonaws.com", passthrough)
    python = {host: _where(rules, host) for host in HOSTS}
    door = "127.0.0.1:1001"
    expected = {"abc123.execute-api.us-east-1.amazonaws.com": "127.0.0.1:2002",
                "dynamodb.us-east-1.amazonaws.com": door, "ssm.eu-west-1.amazonaws.com": door,
                "lambda.us-east-1.amazonaws.com": door, "123456789012.ddb.us-east-1.amazonaws.com": door,
                "example.com": None, "registry.npmjs.org": None, "amazonaws.com.example.org": None}
    for host in ("other.execute-api.us-east-1.amazonaws.com", "sts.amazonaws.com", "s3.cn-north-1.amazonaws.com.cn"):
        expected[host] = None if passthrough else door
    assert python == expected
    script = ("const rules = JSON.parse(process.argv[1]).map(([p, h, port]) => [new RegExp(p), h, port]);"
              "const out = {}; for (const host of JSON.parse(process.argv[2])) {"
              "const r = rules.find(([p]) => p.test(host)); out[host] = r ? `${r[1]}:${r[2]}` : null; }"
              "console.log(JSON.stringify(out));")
    done = subprocess.run(["node", "-e", script, rules, json.dumps(HOSTS)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == python


def test_the_front_door_routes_by_host_or_by_signature_and_only_this_apis_id():
    door = FrontDoor(authority=None, backends={"dynamodb": "http://ddb", "ssm": "http://ssm", "lambda": "http://l",
                                               "execute-api": "http://gw"}, api_id="abc123")
    assert door.route("dynamodb.us-east-1.amazonaws.com", "") == ("dynamodb", "dynamodb")
    assert door.route("123456789012.ddb.eu-west-1.amazonaws.com", "") == ("ddb", "dynamodb")
    assert door.route("abc123.execute-api.us-east-1.amazonaws.com", "") == ("execute-api", "execute-api")
    assert door.route("zzz.execute-api.us-east-1.amazonaws.com", "") == ("execute-api (API zzz)", None)
    assert door.route("sts.amazonaws.com", "") == ("sts", None)
    signed = "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=x"
    assert door.route("127.0.0.1:4000", signed) == ("ssm", "ssm")  # AWS_ENDPOINT_URL: the scope says which
    assert door.route("127.0.0.1:4000", signed.replace("/ssm/", "/s3/")) == ("s3", None)


def test_the_not_emulated_answer_fits_the_callers_protocol():
    status, headers, body = awsnames.not_emulated("sqs", "ListQueues", json_protocol=True)
    assert status == 400 and headers["x-amzn-ErrorType"] == "NotEmulated"
    assert json.loads(body)["message"].startswith("sqs ListQueues is not emulated by wsctl local")
    status, headers, body = awsnames.not_emulated("sts", "GetCallerIdentity", json_protocol=False)
    assert headers["Content-Type"] == "text/xml" and b"<Code>NotEmulated</Code>" in body and b"<ErrorResponse>" in body
    assert b"<Error><Code>NotEmulated" in awsnames.not_emulated("s3", "ListBuckets", json_protocol=False)[2]


def test_a_rest_services_operation_is_named_from_botocores_model():
    assert awsnames.operation("s3", "GET", "/", {}, {}, b"") == "ListBuckets"
    assert awsnames.operation("s3", "GET", "/bucket/some/key", {}, {}, b"") == "GetObject"
    assert awsnames.operation("s3", "GET", "/bucket", {"list-type": "2"}, {}, b"") == "ListObjectsV2"
    assert awsnames.operation("sts", "POST", "/", {}, {}, b"Action=GetCallerIdentity&Version=2011-06-15") == \
        "GetCallerIdentity"
    assert awsnames.operation("dynamodb", "POST", "/", {}, {"X-Amz-Target": "DynamoDB_20120810.GetItem"}, b"") == \
        "GetItem"
