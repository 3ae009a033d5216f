"""A2A v0.3 client built with the Python a2a-sdk 0.3.x (ClientFactory), discovering the agent
from a card URL only.
Usage: CARD_URL=http://host/.../agent-card.json TOKEN=secret TRANSPORT=JSONRPC|HTTP+JSON \
       python client.py flow|call   (python: the a2a-python-v03 venv of the tool cache)
The modes and their output are ../common.py's.
"""
import dataclasses
import os
import sys

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory, create_text_message_object
from a2a.types import (
    Message, MessageSendConfiguration, TaskIdParams, TaskQueryParams, TaskStatusUpdateEvent,
)
from a2a.utils import get_text_parts

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import OVERRIDE_URL, TRANSPORT, fetch_card, require_transport, run  # noqa: E402


def text_of(parts):
    return ''.join(get_text_parts(parts or []))


class Sdk:
    protocol_version = '0.3'  # the only version this SDK line speaks
    code_of_class = None  # A2AClientJSONRPCError carries the code itself, as .error.code

    async def connect(self, http):
        card = await fetch_card(A2ACardResolver, http)
        if OVERRIDE_URL:
            card.url = OVERRIDE_URL
            for i in card.additional_interfaces or []:
                i.url = OVERRIDE_URL
        require_transport([card.preferred_transport or 'JSONRPC']
                          + [i.transport for i in card.additional_interfaces or []])
        config = ClientConfig(httpx_client=http, supported_transports=[TRANSPORT])
        # send_message streams whenever config.streaming and the card allow it, so a blocking
        # send needs a client with streaming off.
        self.streaming = ClientFactory(config).create(card)
        self.blocking = ClientFactory(dataclasses.replace(config, streaming=False)).create(card)

    async def send(self, text, non_blocking=False):
        config = MessageSendConfiguration(blocking=False) if non_blocking else None
        msg = create_text_message_object(content=text)
        [result] = [r async for r in self.blocking.send_message(msg, configuration=config)]
        return result[0] if isinstance(result, tuple) else result  # (Task, None) or a Message

    def stream(self, text):
        return self.streaming.send_message(create_text_message_object(content=text))

    def subscribe(self, task_id):
        return self.streaming.resubscribe(TaskIdParams(id=task_id))

    async def get_task(self, task_id):
        return await self.blocking.get_task(TaskQueryParams(id=task_id))

    async def cancel(self, task_id):
        return await self.blocking.cancel_task(TaskIdParams(id=task_id))

    @staticmethod
    def state(task):
        return task.status.state.value  # 0.3 states already have the output's names

    @staticmethod
    def summary(result):
        """(task id, state, text) of a send's result, a Task or a Message."""
        if isinstance(result, Message):
            return None, None, text_of(result.parts)
        return result.id, Sdk.state(result), ''.join(text_of(a.parts) for a in result.artifacts or [])

    # Streamed events are (Task, update) pairs, the Task being the client's running aggregate and
    # update None when the server sent a Task; or a Message.
    @staticmethod
    def describe(ev):
        if isinstance(ev, Message):
            return f'message:{text_of(ev.parts)}'
        task, update = ev
        if update is None:
            return f'task:{Sdk.state(task)}'
        if isinstance(update, TaskStatusUpdateEvent):
            return f'status:{update.status.state.value}'
        return f'artifact:{text_of(update.artifact.parts)}'

    @staticmethod
    def state_of(ev):
        if isinstance(ev, Message):
            return None
        task, update = ev
        if update is None:
            return Sdk.state(task)
        return update.status.state.value if isinstance(update, TaskStatusUpdateEvent) else None

    @staticmethod
    def task_id_of(ev):
        return ev.task_id if isinstance(ev, Message) else ev[0].id


run(Sdk())
