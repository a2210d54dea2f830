// The trivial handler for bench/vs_serverless_offline.py, Node version (serverless-offline,
// in-process): the same routes as handler.py, with the AWS SDK v3 management client.
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi"

let client = null

function management() {
  if (client === null) {
    client = new ApiGatewayManagementApiClient({
      region: "us-east-1",
      endpoint: process.env.ECHO_MANAGEMENT_ENDPOINT,
    })
  }
  return client
}

export async function handler(event) {
  const { routeKey, connectionId } = event.requestContext
  if (routeKey === "echo") {
    await management().send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: event.body ?? "" }))
  } else if (routeKey === "$default") {
    await management().send(new PostToConnectionCommand({
      ConnectionId: connectionId, Data: JSON.stringify({ connectionId }),
    }))
  }
  return { statusCode: 200 }
}
