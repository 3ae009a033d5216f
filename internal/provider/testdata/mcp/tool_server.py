"""An MCP tool server built with the official Python SDK (FastMCP), streamable HTTP at /mcp.

Usage: python tool_server.py PORT
Its one tool, forecast(city), reports progress three times before it answers. GET /_seen lists
the Authorization header of every MCP request, so a test can check what the router forwarded.
"""
import asyncio
import sys

from mcp.server.fastmcp import Context, FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse

seen = []

server = FastMCP("weather", host="127.0.0.1", port=int(sys.argv[1]), log_level="WARNING")


@server.tool()
async def forecast(city: str, ctx: Context) -> str:
    """Forecasts the weather for a city."""
    request = ctx.request_context.request
    seen.append(request.headers.get("authorization", "") if request else "")
    for step in range(3):
        await asyncio.sleep(0.1)  # reading a station takes a while
        await ctx.report_progress(step + 1, 3, f"reading station {step + 1}")
    return f"sunny in {city}"


@server.custom_route("/_seen", methods=["GET"])
async def _seen(_: Request) -> JSONResponse:
    return JSONResponse({"authorization": seen})


if __name__ == "__main__":
    server.run(transport="streamable-http")
