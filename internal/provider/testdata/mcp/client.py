"""An MCP client built with the official Python SDK: calls tools through kagenti-router.

Usage: python client.py URL TOKEN TOOL ARGS_JSON
Connects over streamable HTTP with the bearer token, lists the tools, calls TOOL with ARGS_JSON
and a progress callback, and prints one JSON line:
  {"tools": [...names...], "isError": bool, "text": "...", "progress": [[progress, total, message], ...]}
or {"error": "..."} when the session fails.
"""
import asyncio
import json
import sys

import anyio

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def main(url, token, tool, args):
    progress = []

    async def on_progress(value, total, message):
        progress.append([value, total, message])

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = [t.name for t in (await session.list_tools()).tools]
            result = await session.call_tool(tool, args, progress_callback=on_progress)
            # The SDK may hand progress to the callback after call_tool has returned (the
            # notifications came before the result): wait until none has come for 300 ms.
            seen = -1
            while seen != len(progress):
                seen = len(progress)
                await anyio.sleep(0.3)
            text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
            return {"tools": tools, "isError": result.isError, "text": text, "progress": progress}


if __name__ == "__main__":
    url, token, tool, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    try:
        out = asyncio.run(main(url, token, tool, args))
    except BaseException as e:  # an ExceptionGroup from the SDK's task group, too
        out = {"error": repr(e)[:500]}
    print(json.dumps(out))
