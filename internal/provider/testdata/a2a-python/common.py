"""What v03/client.py and v1/client.py share: the interop test's contract, written once.

Environment: CARD_URL (the card's full URL, used as is), TOKEN (bearer token for every request),
TRANSPORT (JSONRPC | HTTP+JSON, never another), OVERRIDE_URL (replaces every interface URL of the
fetched card), TEXT (the text of `call`). Modes (argv[1]):
  flow  card, send, stream, get, resubscribe, cancel: one JSON line per step; exit 1 right after
        the first error line.
  call  one blocking send of $TEXT (default "hello"): {"ok":true,"state":..,"text":..} or
        {"ok":false,"error":..}; always exit 0.
Each client brings an `sdk` adapter (see flow() for what it must offer); this file imports no A2A SDK.
"""
import asyncio
import json
import os
import sys
from urllib.parse import urlsplit

import httpx

CARD_URL = os.environ.get('CARD_URL', '')
TOKEN = os.environ.get('TOKEN', '')
TRANSPORT = os.environ.get('TRANSPORT', 'JSONRPC')
OVERRIDE_URL = os.environ.get('OVERRIDE_URL', '')


def out(obj):
    print(json.dumps(obj, separators=(',', ':')), flush=True)


def http_client():
    """The one httpx client behind every request, the card fetch included; it carries the token."""
    headers = {'Authorization': f'Bearer {TOKEN}'} if TOKEN else {}
    return httpx.AsyncClient(headers=headers, timeout=30)


async def fetch_card(resolver_cls, http):
    """Fetches the card at CARD_URL as is. A2ACardResolver requests base_url + '/' + card path,
    so split CARD_URL at its origin rather than pass it as base_url."""
    parts = urlsplit(CARD_URL)
    origin = f'{parts.scheme}://{parts.netloc}'
    return await resolver_cls(http, origin, CARD_URL[len(origin):]).get_agent_card()


def require_transport(offered):
    """Each client enables TRANSPORT alone in its ClientFactory, so the SDK cannot fall back to
    another one; this check only makes the failure say why."""
    if TRANSPORT not in ('JSONRPC', 'HTTP+JSON'):
        raise ValueError(f'TRANSPORT must be JSONRPC or HTTP+JSON, not {TRANSPORT!r}')
    if TRANSPORT not in offered:
        offers = ', '.join(dict.fromkeys(offered)) or 'none'
        raise ValueError(f'agent card does not offer transport {TRANSPORT} (offers: {offers})')


def error_info(e, code_of_class=None):
    """The error object of the output; code: the first int `code` or `error.code` on the exception
    or its __cause__ chain, else what code_of_class(type) maps the exception's class to."""
    code, cur = None, e
    while cur is not None and code is None:
        for c in (getattr(cur, 'code', None), getattr(getattr(cur, 'error', None), 'code', None),
                  code_of_class(type(cur)) if code_of_class else None):
            if isinstance(c, int) and not isinstance(c, bool):
                code = c
                break
        cur = cur.__cause__
    name = type(e).__name__
    return {'class': name, 'name': name, 'code': code, 'message': str(e)[:300]}


async def flow(sdk):
    step = 'card'
    canceling = None
    try:
        async with http_client() as http:
            await sdk.connect(http)
            out({'step': step, 'protocolVersion': sdk.protocol_version, 'transport': TRANSPORT})

            step = 'send'
            _, state, text = sdk.summary(await sdk.send('hello'))
            out({'step': step, 'state': state, 'text': text})

            step = 'stream'
            events, task_id = [], None
            async for ev in sdk.stream('stream me'):
                events.append(sdk.describe(ev))
                task_id = task_id or sdk.task_id_of(ev)
            out({'step': step, 'events': events})

            step = 'get'
            task = await sdk.get_task(task_id)
            out({'step': step, 'state': sdk.state(task), 'artifacts': len(task.artifacts or [])})

            step = 'resubscribe'
            slow_id, _, _ = sdk.summary(await sdk.send('slow', non_blocking=True))
            if not slow_id:
                raise RuntimeError('the non-blocking send returned a Message, not a Task')
            events, last = [], None
            async for ev in sdk.subscribe(slow_id):
                events.append(sdk.describe(ev))
                last = sdk.state_of(ev) or last
                # Started after the first event, awaited only once the stream has ended.
                canceling = canceling or asyncio.create_task(sdk.cancel(slow_id))
            out({'step': step, 'events': events, 'last': last})

            step = 'cancel'
            if not canceling:
                raise RuntimeError('resubscribe yielded no event, cancel was never sent')
            task, canceling = await canceling, None
            out({'step': step, 'state': sdk.state(task)})
        return 0
    except Exception as e:
        out({'step': step, 'error': error_info(e, sdk.code_of_class)})
        if canceling:
            canceling.cancel()
        return 1


async def call(sdk):
    try:
        async with http_client() as http:
            await sdk.connect(http)
            _, state, text = sdk.summary(await sdk.send(os.environ.get('TEXT', 'hello')))
        out({'ok': True, 'state': state, 'text': text})
    except Exception as e:
        out({'ok': False, 'error': error_info(e, sdk.code_of_class)})
    return 0


def run(sdk):
    modes = {'flow': flow, 'call': call}
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        print('usage: client.py flow|call', file=sys.stderr)
        sys.exit(2)
    sys.exit(asyncio.run(modes[sys.argv[1]](sdk)))
