# An ACP agent built with the ACP SDK (acp_sdk.server), for the router's ACP tests.
# Usage: server.py PORT
import sys
from collections.abc import AsyncGenerator

from acp_sdk.models import Message, MessagePart
from acp_sdk.server import Context, RunYield, RunYieldResume, Server

server = Server()


@server.agent(name="summarizer", description="Summarizes what it is told")
async def summarizer(input: list[Message], context: Context) -> AsyncGenerator[RunYield, RunYieldResume]:
    text = " ".join(part.content for message in input for part in message.parts if part.content)
    yield Message(role="agent", parts=[MessagePart(content="summary of: " + text, content_type="text/plain")])


server.run(host="127.0.0.1", port=int(sys.argv[1]), self_registration=False, configure_logger=False, access_log=False)
