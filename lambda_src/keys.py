"""The registry's key schema: the one definition of the single-table layout.

The deployed handler, `wsctl deploy`, the local emulator and every operating
command import this module, so the layout can only change in one place.

| item            | PK          | SK           | GSI1PK         | GSI1SK      |
|-----------------|-------------|--------------|----------------|-------------|
| connection      | CONN#{id}   | CONN         | USER#{userId}  | CONN#{id}   |
| room membership | CONN#{id}   | ROOM#{room}  | ROOM#{room}    | CONN#{id}   |
"""

CONN_PREFIX = "CONN#"
USER_PREFIX = "USER#"
ROOM_PREFIX = "ROOM#"
CONN_SK = "CONN"
GSI1 = "GSI1"
TTL_ATTRIBUTE = "ttl"


def conn_pk(connection_id: str) -> str:
    return CONN_PREFIX + connection_id


def user_key(user_id: str) -> str:
    return USER_PREFIX + user_id


def room_key(room: str) -> str:
    return ROOM_PREFIX + room


def connection_id_of(pk: str) -> str:
    """CONN#{id} -> id (also works for GSI1SK, which holds the same value)."""
    return pk[len(CONN_PREFIX):] if pk.startswith(CONN_PREFIX) else pk


def room_of(sk: str) -> str:
    return sk[len(ROOM_PREFIX):]


def table_definition(table_name: str) -> dict:
    """Keyword arguments for DynamoDB CreateTable (on-demand, GSI1 projecting all)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI1,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }
