"""The registry as a value (wsctl.registry.layout) and the reading of a layout off a table
(wsctl.registry.infer): pure, no AWS."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_src import keys
from wsctl.registry.infer import infer, looks_like_id, tables_in_environment
from wsctl.registry.layout import KeyPart, Layout, Lookup, Template, parse_key, parse_lookup, wsctl_layout
from wsctl.targets.apis import choose_stage, parse_ref
from wsctl.errors import UsageError, WsctlError

IDS = ["L0SM9cOFvHcCIhw=", "BFaT_fALIAMCKug=", "Xy-9cOFvHcCIhwA="]
ID_TEXT = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=15,
                  max_size=15).map(lambda s: s + "=")


# -- templates and layouts ----------------------------------------------------------------------------
@given(ID_TEXT, st.sampled_from(["{id}", "CONN#{id}", "conn:{id}:meta", "{id}#x"]))
def test_a_template_renders_and_parses_back_any_id(cid, text):
    template = Template(text)
    assert template.parse(template.render(cid)) == cid


def test_a_template_refuses_what_it_cannot_hold_and_matches_only_its_shape():
    with pytest.raises(ValueError):
        Template("{id}#{user}")
    with pytest.raises(ValueError):
        Template("CONN#{connection}")
    assert Template("CONN").parse("CONN") == "" and Template("CONN").parse("ROOM#x") is None
    assert Template("CONN#{id}").parse("CONN#") is None and Template("CONN#{id}").parse(7) is None


def test_wsctls_own_layout_is_one_value_of_the_type():
    layout = wsctl_layout("t")
    cid = IDS[0]
    assert layout.key_for(cid) == {"PK": keys.conn_pk(cid), "SK": keys.CONN_SK}
    connection = {"PK": keys.conn_pk(cid), "SK": keys.CONN_SK, "GSI1PK": keys.user_key("alice"), "connectionId": cid}
    membership = {"PK": keys.conn_pk(cid), "SK": keys.room_key("lobby"), "GSI1PK": keys.room_key("lobby"),
                  "connectionId": cid}
    assert layout.connection_id(connection) == cid and layout.connection_id(membership) is None
    assert layout.user_of(connection) == "alice" and layout.room_of(membership) == "lobby"
    assert layout.owner_id(membership) == cid and layout.owned and layout.cascade
    assert Layout.from_dict(layout.to_dict()) == layout


def test_the_connection_filter_asks_dynamodb_for_connection_items_only():
    layout = Layout("t", (KeyPart("pk", Template("CONNECTION#{id}")), KeyPart("sk", Template("METADATA"))),
                    ttl_attribute="expiresAt")
    scan = layout.connection_filter(now=1000)
    assert scan["FilterExpression"] == ("begins_with(#k0, :k0) AND #k1 = :k1 AND "
                                        "(attribute_not_exists(#ttl) OR #ttl > :now)")
    assert scan["ExpressionAttributeValues"] == {":k0": {"S": "CONNECTION#"}, ":k1": {"S": "METADATA"},
                                                 ":now": {"N": "1000"}}
    assert Layout("t", (KeyPart("connectionId", Template("{id}")),)).connection_filter() == {}


def test_ttl_is_honoured_as_dynamodb_leaves_expired_items_for_days():
    layout = Layout("t", (KeyPart("id", Template("{id}")),), ttl_attribute="ttl")
    assert layout.is_live({"ttl": 2000}, now=1000) and not layout.is_live({"ttl": 500}, now=1000)
    assert layout.is_live({}, now=1000) and layout.is_live({"ttl": "soon"}, now=1000)


@pytest.mark.parametrize("values, words", [
    (["PK"], "write ATTRIBUTE=TEMPLATE"), (["PK=CONN"], "must hold the id"),
    (["PK={user}"], "holds {id} or nothing"), (["a={id}", "b=x", "c=y"], "one or two attributes"),
])
def test_a_bad_registry_key_option_says_what_to_write(values, words):
    with pytest.raises(ValueError, match=words.replace("{", r"\{").replace("}", r"\}")):
        parse_key(values)


def test_lookups_are_written_index_attribute_template():
    assert parse_lookup("GSI1:GSI1PK=USER#{user}", "user") == Lookup("GSI1PK", Template("USER#{user}"), "GSI1")
    assert parse_lookup("byRoom:roomId", "room") == Lookup("roomId", Template("{room}"), "byRoom")
    assert parse_lookup("userId", "user").index is None
    with pytest.raises(ValueError, match=r"must hold \{room\}"):
        parse_lookup("byRoom:roomId=ROOM#{user}", "room")


# -- reading a layout off a table ------------------------------------------------------------------------
SINGLE = {"TableName": "game", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                             {"AttributeName": "sk", "KeyType": "RANGE"}],
          "GlobalSecondaryIndexes": [{"IndexName": "byUser",
                                      "KeySchema": [{"AttributeName": "userId", "KeyType": "HASH"}]}]}


def test_the_canonical_samples_table_is_keyed_by_the_id_alone():
    table = {"TableName": "c", "KeySchema": [{"AttributeName": "connectionId", "KeyType": "HASH"}]}
    guess = infer(table, None, [{"connectionId": cid} for cid in IDS])
    assert guess.layout.key == (KeyPart("connectionId", Template("{id}")),) and sorted(guess.sample_ids) == sorted(IDS)
    assert not guess.layout.owned and infer(table, None, []).layout == guess.layout  # empty: the only reading


def test_wsctls_layout_is_read_back_off_its_items():
    table = {"TableName": "w", "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [{"IndexName": "GSI1", "KeySchema": [
            {"AttributeName": "GSI1PK", "KeyType": "HASH"}, {"AttributeName": "GSI1SK", "KeyType": "RANGE"}]}]}
    items = [{"PK": keys.conn_pk(c), "SK": keys.CONN_SK, "GSI1PK": keys.user_key("u%d" % n), "connectionId": c,
              "ttl": 9} for n, c in enumerate(IDS)]
    items.append({"PK": keys.conn_pk(IDS[0]), "SK": keys.room_key("lobby"), "GSI1PK": keys.room_key("lobby"),
                  "connectionId": IDS[0]})
    layout = infer(table, "ttl", items, owned=True).layout
    expected = wsctl_layout("w")
    assert (layout.key, layout.user, layout.room, layout.id_attribute, layout.ttl_attribute) == (
        expected.key, expected.user, expected.room, expected.id_attribute, expected.ttl_attribute)


def test_a_single_table_design_and_its_user_index_are_read_off_the_items():
    items = [{"pk": "CONNECTION#" + cid, "sk": "METADATA", "userId": "alice"} for cid in IDS]
    items.append({"pk": "CONNECTION#" + IDS[0], "sk": "SCORE", "points": 3})
    guess = infer(SINGLE, "expiresAt", items)
    assert guess.layout.describe() == ("table game, key pk=CONNECTION#{id} sk=METADATA, users by index "
                                       "byUser:userId={user}, ttl expiresAt")


def test_what_the_items_cannot_tell_names_the_option_that_decides():
    assert "--registry-key pk=PREFIX{id} --registry-key sk=VALUE" in infer(SINGLE, None, []).missing
    no_ids = infer(SINGLE, None, [{"pk": "USER#alice", "sk": "PROFILE"}])
    assert no_ids.layout is None and "holds a connection id" in no_ids.missing
    mixed = infer(SINGLE, None, [{"pk": "C#" + IDS[0], "sk": "A"}, {"pk": "C#" + IDS[1], "sk": "B"}])
    assert mixed.layout is None and "does not show which item is the connection's" in mixed.missing


def test_ids_and_table_names_are_recognised_by_their_shape():
    assert all(looks_like_id(c) for c in IDS) and not looks_like_id("alice") and not looks_like_id(IDS[0][:-1])
    env = {"TABLE_NAME": "conns", "REGISTRY": "arn:aws:dynamodb:eu-west-1:123456789012:table/reg/index/x",
           "GREETING": "hello-world", "CONNECTIONS_TABLE": "a b"}
    assert tables_in_environment(env) == ["conns", "reg"]


# -- naming an API ----------------------------------------------------------------------------------------
def test_what_api_names_is_read_off_ids_names_and_urls():
    assert parse_ref("abc123defg").api_id is None  # an id or a name: GetApis tells which
    url = parse_ref("wss://abc123defg.execute-api.eu-west-1.amazonaws.com/prod")
    assert (url.api_id, url.region, url.stage) == ("abc123defg", "eu-west-1", "prod")
    management = parse_ref("https://abc123defg.execute-api.cn-north-1.amazonaws.com.cn/dev/@connections/x")
    assert (management.api_id, management.region, management.stage) == ("abc123defg", "cn-north-1", "dev")
    domain = parse_ref("wss://chat.example.com/v1")
    assert (domain.domain, domain.base_path, domain.api_id) == ("chat.example.com", "v1", None)
    with pytest.raises(UsageError):
        parse_ref("ftp://x")


def test_the_stage_is_the_one_given_or_the_only_one():
    assert choose_stage(["prod"], None, "a1") == "prod" and choose_stage(["dev", "prod"], "dev", "a1") == "dev"
    with pytest.raises(UsageError, match=r"2 stages \(dev, prod\)"):
        choose_stage(["dev", "prod"], None, "a1")
    with pytest.raises(WsctlError, match=r"stage qa does not exist \(the stack serves dev\)"):
        choose_stage(["dev"], "qa", "a1", "the stack serves")
