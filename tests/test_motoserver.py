"""The embedded DynamoDB (`python -m wsctl.local.motoserver`) keeps each table's items sorted
as writes come (keep_items_sorted) instead of moto sorting the table for every read. Every kind of write must still show in the next read:
put, overwrite, conditional put, update (new item and in place, GSI key changed), delete, batch
write, transaction; checked against a model with queries on the table and the GSI and with
paginated, segmented scans."""

import random
import tempfile
from pathlib import Path

import pytest

from lambda_src import keys
from wsctl.apispec import TableSpec
from wsctl.local import dynamo

TABLE = "cache-check"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def ddb():
    server = dynamo.EmbeddedMoto(Path(tempfile.mkstemp(prefix="motoserver-", suffix=".log")[1]))
    endpoint = server.start()
    try:
        dynamo.prepare_table(endpoint, TableSpec(TABLE, keys.table_definition(TABLE), keys.TTL_ATTRIBUTE), REGION)
        yield dynamo.client("dynamodb", endpoint, REGION)
    finally:
        server.stop()


def item(pk, sk, user):
    return {"PK": {"S": pk}, "SK": {"S": sk}, "GSI1PK": {"S": user}, "GSI1SK": {"S": pk}}


def scanned(ddb, page_size, segments):
    found = set()
    for segment in range(segments):
        kwargs = {"TableName": TABLE, "Limit": page_size, "Segment": segment, "TotalSegments": segments}
        while True:
            page = ddb.scan(**kwargs)
            found |= {(i["PK"]["S"], i["SK"]["S"], i["GSI1PK"]["S"]) for i in page["Items"]}
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found


def test_every_write_shows_in_the_next_read(ddb):
    rng = random.Random(5)
    model = {}  # (PK, SK) -> user
    for step in range(400):
        pk, sk = "CONN#%d" % rng.randrange(40), rng.choice(["CONN", "ROOM#a", "ROOM#b"])
        user = "USER#%d" % rng.randrange(6)
        kind = rng.choice(["put", "put", "conditional", "update", "delete", "batch", "transact"])
        if kind == "put":
            ddb.put_item(TableName=TABLE, Item=item(pk, sk, user))
            model[(pk, sk)] = user
        elif kind == "conditional":
            try:
                ddb.put_item(TableName=TABLE, Item=item(pk, sk, user), ConditionExpression="attribute_not_exists(PK)")
                model[(pk, sk)] = user
            except ddb.exceptions.ConditionalCheckFailedException:
                assert (pk, sk) in model
        elif kind == "update":  # creates the item, or changes its GSI key in place
            ddb.update_item(TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}},
                            UpdateExpression="SET GSI1PK = :u, GSI1SK = :p",
                            ExpressionAttributeValues={":u": {"S": user}, ":p": {"S": pk}})
            model[(pk, sk)] = user
        elif kind == "delete":
            ddb.delete_item(TableName=TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}})
            model.pop((pk, sk), None)
        elif kind == "batch":
            other = "CONN#%d" % rng.randrange(40)
            ddb.batch_write_item(RequestItems={TABLE: [
                {"PutRequest": {"Item": item(other, "CONN", user)}},
                {"DeleteRequest": {"Key": {"PK": {"S": pk}, "SK": {"S": sk}}}}]} if other != pk else {TABLE: [
                {"PutRequest": {"Item": item(other, "CONN", user)}}]})
            if other != pk:
                model.pop((pk, sk), None)
            model[(other, "CONN")] = user
        else:
            ddb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": item(pk, sk, user)}}])
            model[(pk, sk)] = user

        partition = ddb.query(TableName=TABLE, KeyConditionExpression="PK = :p",
                              ExpressionAttributeValues={":p": {"S": pk}})["Items"]
        assert sorted(i["SK"]["S"] for i in partition) == sorted(s for (p, s) in model if p == pk), (step, kind)
        members = ddb.query(TableName=TABLE, IndexName=keys.GSI1, KeyConditionExpression="GSI1PK = :u",
                            ExpressionAttributeValues={":u": {"S": user}})["Items"]
        assert sorted((i["PK"]["S"], i["SK"]["S"]) for i in members) == sorted(
            k for k, u in model.items() if u == user), (step, kind)
        if step % 50 == 49:
            expected = {(p, s, u) for (p, s), u in model.items()}
            assert scanned(ddb, page_size=7, segments=1) == expected
            assert scanned(ddb, page_size=5, segments=3) == expected
