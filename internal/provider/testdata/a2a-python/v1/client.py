"""A2A v1.0 client built with the Python a2a-sdk 1.x (ClientFactory), discovering the agent
from a card URL only.
Usage: CARD_URL=http://host/.../agent-card.json TOKEN=secret TRANSPORT=JSONRPC|HTTP+JSON \
       python client.py flow|call   (python: the a2a-python-v1 venv of the tool cache)
The modes and their output are ../common.py's.
"""
import dataclasses
import os
import sys

from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.compat.v0_3.versions import is_legacy_version
from a2a.helpers import get_text_parts, new_text_message
from a2a.types import (
    CancelTaskRequest, GetTaskRequest, Message, Role, SendMessageConfiguration, SendMessageRequest,
    SubscribeToTaskRequest, TaskState,
)
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import OVERRIDE_URL, TRANSPORT, fetch_card, require_transport, run  # noqa: E402


def text_of(parts):
    return ''.join(get_text_parts(parts))


def norm(state):
    """TaskState -> 0.3 name: TASK_STATE_INPUT_REQUIRED -> input-required, UNSPECIFIED -> unknown."""
    name = TaskState.Name(state) if state in TaskState.values() else 'TASK_STATE_UNSPECIFIED'
    name = name.removeprefix('TASK_STATE_').lower().replace('_', '-')
    return 'unknown' if name == 'unspecified' else name


def request(text, non_blocking=False):
    return SendMessageRequest(
        message=new_text_message(text, role=Role.ROLE_USER),
        configuration=SendMessageConfiguration(return_immediately=non_blocking),
    )


class Sdk:
    # The JSON-RPC and REST transports raise typed errors (TaskNotFoundError...) without the
    # numeric code; the SDK's own class -> code table gives it back.
    code_of_class = staticmethod(JSON_RPC_ERROR_CODE_MAP.get)

    async def connect(self, http):
        card = await fetch_card(A2ACardResolver, http)
        if OVERRIDE_URL:
            for i in card.supported_interfaces:
                i.url = OVERRIDE_URL
        require_transport([i.protocol_binding for i in card.supported_interfaces])
        config = ClientConfig(httpx_client=http, supported_protocol_bindings=[TRANSPORT])
        # send_message streams whenever config.streaming and the card allow it, so a blocking
        # send needs a client with streaming off.
        self.streaming = ClientFactory(config).create(card)
        self.blocking = ClientFactory(dataclasses.replace(config, streaming=False)).create(card)
        # The factory prefers this binding's 1.0 interface and speaks 0.3 (its compat transports)
        # only when the interface it picks has a 0.3 protocolVersion, i.e. when all of them have.
        versions = [i.protocol_version for i in card.supported_interfaces if i.protocol_binding == TRANSPORT]
        self.protocol_version = '0.3' if all(map(is_legacy_version, versions)) else '1.0'

    async def send(self, text, non_blocking=False):
        [response] = [r async for r in self.blocking.send_message(request(text, non_blocking))]
        return response.task if response.HasField('task') else response.message

    def stream(self, text):
        return self.streaming.send_message(request(text))

    def subscribe(self, task_id):
        return self.streaming.subscribe(SubscribeToTaskRequest(id=task_id))

    async def get_task(self, task_id):
        return await self.blocking.get_task(GetTaskRequest(id=task_id))

    async def cancel(self, task_id):
        return await self.blocking.cancel_task(CancelTaskRequest(id=task_id))

    @staticmethod
    def state(task):
        return norm(task.status.state)

    @staticmethod
    def summary(result):
        """(task id, state, text) of a send's result, a Task or a Message."""
        if isinstance(result, Message):
            return None, None, text_of(result.parts)
        return result.id, norm(result.status.state), ''.join(text_of(a.parts) for a in result.artifacts)

    # Streamed events are StreamResponse, whose `payload` oneof is task, message, status_update
    # or artifact_update.
    @staticmethod
    def describe(ev):
        kind = ev.WhichOneof('payload')
        if kind is None:
            return 'unknown:'
        value = getattr(ev, kind)
        return {
            'task': lambda: f'task:{norm(value.status.state)}',
            'message': lambda: f'message:{text_of(value.parts)}',
            'status_update': lambda: f'status:{norm(value.status.state)}',
            'artifact_update': lambda: f'artifact:{text_of(value.artifact.parts)}',
        }[kind]()

    @staticmethod
    def state_of(ev):
        kind = ev.WhichOneof('payload')
        return norm(getattr(ev, kind).status.state) if kind in ('task', 'status_update') else None

    @staticmethod
    def task_id_of(ev):
        kind = ev.WhichOneof('payload')
        return ev.task.id if kind == 'task' else getattr(ev, kind).task_id if kind else None


run(Sdk())
