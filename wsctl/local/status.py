"""The document `wsctl --local status` shows: a running emulator as its state file and its own
views (functions, connections) describe it."""


def function_routes(name: str, routes: dict, authorizer: str | None) -> list:
    """The route keys a function serves, "(authorizer)" first when it is the API's authorizer."""
    keys = [key for key, function in routes.items() if function == name]
    return ["(authorizer)"] + keys if authorizer == name else keys


def document(target) -> dict:
    """`wsctl --local status`: where the emulator listens, what it runs (each function with its
    routes and environments), and how many connections it holds."""
    state = target.state
    status = {"target": "local", "url": state.ws_url, "tlsUrl": state.wss_url,
              "managementEndpoint": state.management_endpoint,
              "tlsManagementEndpoint": state.tls_management_endpoint,
              "lambdaEndpoint": state.lambda_endpoint, "caBundle": state.ca_bundle,
              "dynamodbEndpoint": state.dynamodb_endpoint, "dynamodbBackend": state.backend,
              "api": state.origin, "table": state.table, "tables": list(state.tables),
              "stage": state.stage, "auth": state.auth if state.bundled else None, "pid": state.pid,
              "name": state.name, "project": state.project}
    functions = target.view("functions")
    for function in functions:
        function["routes"] = function_routes(function["name"], state.routes, state.authorizer)
    status["functions"] = functions
    status["notEmulated"] = list(state.not_emulated)
    status["inFlight"] = target.view("gateway")
    status["liveConnections"] = status["inFlight"]["connections"]
    if target.has_registry():
        status["registry"] = target.registry.describe()
        status["registryEntries"] = target.reader().count_live()
        if state.bundled:
            status["liveConnections"] = status["registryEntries"]
    return status


__all__ = ["document", "function_routes"]
