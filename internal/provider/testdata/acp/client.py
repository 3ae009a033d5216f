# Calls an ACP agent through kagenti-router with the ACP SDK client (acp_sdk.client): lists the
# agents, runs one synchronously, reads the run back by id, and streams a second run.
# Usage: client.py BASE_URL AGENT TEXT TOKEN
import asyncio
import sys

from acp_sdk.client import Client


async def main(base: str, agent: str, text: str, token: str) -> None:
    headers = {"Authorization": "Bearer " + token} if token else None
    async with Client(base_url=base, headers=headers) as client:
        names = [a.name async for a in client.agents()]
        print("agents:", ",".join(names))
        run = await client.run_sync(text, agent=agent)
        print("sync:", run.output[-1].parts[0].content)
        again = await client.run_status(run_id=run.run_id)
        print("status:", again.status)
        streamed = []
        async for event in client.run_stream(text + " (streamed)", agent=agent):
            streamed.append(event.type)
        print("stream:", ",".join(streamed))


asyncio.run(main(*sys.argv[1:5]))
