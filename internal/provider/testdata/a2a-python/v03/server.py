"""A2A v0.3 echo agent built with the Python a2a-sdk 0.3.x (its Starlette JSON-RPC server), the
Python peer of ../../a2a-js/v03/server.mjs: the same behaviour and routes, JSON-RPC only.

Usage: PORT=0 python server.py   -> prints "LISTENING <port>" once listening on 127.0.0.1.
  POST /agent                              JSON-RPC
  GET  /agent/.well-known/agent-card.json  agent card
  GET  /agent/_seen                        Authorization / A2A-Version headers of every JSON-RPC call
"""
import asyncio
import os
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, Part, TaskState, TextPart
from a2a.utils import get_message_text, new_task


class EchoExecutor(AgentExecutor):
    def __init__(self):
        self.canceled = set()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message)
        task = context.current_task or new_task(context.message)
        await event_queue.enqueue_event(task)  # submitted: the first event, as the JS peer's
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.update_status(TaskState.working)
        if 'slow' in text:
            for _ in range(10):
                await asyncio.sleep(0.3)
                if task.id in self.canceled:
                    return  # cancel() already published the canceled status
                await updater.update_status(TaskState.working)
        await updater.add_artifact([Part(root=TextPart(text=f'echo: {text}'))], name='echo')
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.canceled.add(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def main():
    sock = socket.socket()
    sock.bind(('127.0.0.1', int(os.environ.get('PORT', '0'))))
    port = sock.getsockname()[1]
    url = f'http://127.0.0.1:{port}/agent'
    card = AgentCard(
        name='echo-py-v03', description='Echoes text back (A2A v0.3, Python)', url=url, version='1.0.0',
        protocol_version='0.3.0', preferred_transport='JSONRPC',
        capabilities=AgentCapabilities(streaming=True), default_input_modes=['text/plain'], default_output_modes=['text/plain'],
        skills=[AgentSkill(id='echo', name='echo', description='Echoes text back', tags=['echo'])],
    )
    a2a = A2AStarletteApplication(agent_card=card, http_handler=DefaultRequestHandler(EchoExecutor(), InMemoryTaskStore()))
    seen = {'authorization': [], 'a2aVersion': []}

    async def seen_route(_request):
        return JSONResponse(seen)

    inner = Starlette(routes=[Route('/agent/_seen', seen_route),
                              *a2a.routes(agent_card_url='/agent/.well-known/agent-card.json', rpc_url='/agent')])

    async def app(scope, receive, send):
        if scope['type'] == 'http' and scope['method'] == 'POST':
            headers = dict(scope['headers'])
            seen['authorization'].append(headers.get(b'authorization', b'').decode())
            seen['a2aVersion'].append(headers.get(b'a2a-version', b'').decode())
        await inner(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(app, log_level='warning'))
    print(f'LISTENING {port}', flush=True)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == '__main__':
    main()
