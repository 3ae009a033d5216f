// A2A v1.0 client built with @a2a-js/sdk 1.3.0 (ClientFactory, default options: legacyCompat off, so it
// speaks only v1.0), discovering the agent from a card URL only.
// Usage: CARD_URL=http://host/.../agent-card.json TOKEN=secret TRANSPORT=JSONRPC|HTTP+JSON node client.mjs flow|call
//   flow: card, send, stream, get, resubscribe, cancel; one JSON line per step, exit 1 on the first error.
//   call: one blocking send; prints {"ok":true,"state":..} or {"ok":false,"error":..}; always exit 0.
//   OVERRIDE_URL: replace every interface URL of the fetched card before building the client.
import { randomUUID } from 'node:crypto';
import { Role, taskStateToJSON } from '@a2a-js/sdk';
import {
  ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver,
  JsonRpcTransportFactory, RestTransportFactory,
} from '@a2a-js/sdk/client';

const { CARD_URL, TOKEN = '', TRANSPORT = 'JSONRPC', OVERRIDE_URL = '' } = process.env;
const out = (obj) => console.log(JSON.stringify(obj));

// Every request, the card fetch included, goes through this fetch, which adds the bearer token.
const fetchImpl = (url, init = {}) => {
  const headers = new Headers(init.headers);
  if (TOKEN) headers.set('Authorization', `Bearer ${TOKEN}`);
  return fetch(url, { ...init, headers });
};

async function connect() {
  const resolver = new DefaultAgentCardResolver({ fetchImpl });
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
    preferredTransports: [TRANSPORT],
    cardResolver: resolver,
  }));
  const card = await resolver.resolve(CARD_URL, ''); // path '' = CARD_URL is used as is
  if (OVERRIDE_URL) for (const i of card.supportedInterfaces ?? []) i.url = OVERRIDE_URL;
  // The factory silently falls back to another transport; refuse instead.
  const offered = (card.supportedInterfaces ?? []).map((i) => i.protocolBinding);
  if (!offered.some((t) => t.toUpperCase() === TRANSPORT.toUpperCase())) {
    throw new Error(`agent card does not offer transport ${TRANSPORT} (offers: ${[...new Set(offered)].join(', ') || 'none'})`);
  }
  const client = await factory.createFromAgentCard(card);
  return { client, transport: client.transport.protocolName };
}

// In-memory objects use the proto-TS shapes: a Part's content is a {$case, value} oneof, enums are numbers.
const msg = (text, configuration) => ({
  tenant: '',
  message: {
    messageId: randomUUID(), role: Role.ROLE_USER,
    parts: [{ content: { $case: 'text', value: text }, filename: '', mediaType: 'text/plain' }],
  },
  ...(configuration ? { configuration } : {}),
});
const textOf = (parts = []) => parts.filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join('');
// TaskState enum -> 0.3 name: TASK_STATE_INPUT_REQUIRED -> input-required, TASK_STATE_UNSPECIFIED -> unknown.
const norm = (state) => {
  const s = taskStateToJSON(state).replace(/^TASK_STATE_/, '').toLowerCase().replace(/_/g, '-');
  return s === 'unspecified' || s === 'unrecognized' ? 'unknown' : s;
};
// Stream events are StreamResponse { payload: { $case: 'task'|'message'|'statusUpdate'|'artifactUpdate', value } }.
const stateOf = ({ payload: { $case, value } }) => ($case === 'task' || $case === 'statusUpdate' ? norm(value.status?.state) : undefined);
const describe = ({ payload: { $case, value } }) => ({
  task: () => `task:${norm(value.status?.state)}`,
  message: () => `message:${textOf(value.parts)}`,
  statusUpdate: () => `status:${norm(value.status?.state)}`,
  artifactUpdate: () => `artifact:${textOf(value.artifact?.parts)}`,
}[$case]?.() ?? `unknown:${$case}`);
// sendMessage returns a Task or a Message (only a Message has messageId).
const summary = (r) => ('messageId' in r
  ? { state: null, text: textOf(r.parts) }
  : { state: norm(r.status?.state), text: (r.artifacts ?? []).map((a) => textOf(a.parts)).join('') });

// Finds a numeric JSON-RPC/A2A error code wherever the SDK put it.
const codeOf = (e, depth = 0) => {
  if (!e || typeof e !== 'object' || depth > 3) return null;
  for (const c of [e.code, e.envelopeCode, e.errorResponse?.error?.code]) if (typeof c === 'number') return c;
  return codeOf(e.cause, depth + 1);
};
const errorInfo = (e) => ({
  class: e?.constructor?.name ?? typeof e, name: e?.name ?? null, code: codeOf(e), message: String(e?.message ?? e).slice(0, 300),
});

async function flow() {
  let step = 'card';
  try {
    const { client, transport } = await connect();
    out({ step, protocolVersion: client.protocolVersion, transport });

    step = 'send';
    out({ step, ...summary(await client.sendMessage(msg('hello'))) });

    step = 'stream';
    const events = [];
    let taskId;
    for await (const ev of client.sendMessageStream(msg('stream me'))) {
      events.push(describe(ev));
      taskId ??= ev.payload.$case === 'task' ? ev.payload.value.id : ev.payload.value.taskId;
    }
    out({ step, events });

    step = 'get';
    const got = await client.getTask({ tenant: '', id: taskId });
    out({ step, state: norm(got.status?.state), artifacts: got.artifacts?.length ?? 0 });

    step = 'resubscribe';
    const slow = await client.sendMessage(msg('slow', { returnImmediately: true }));
    const resubEvents = [];
    let last;
    let canceling; // settled promise of the cancel call, started after the first resubscribe event
    for await (const ev of client.resubscribeTask({ tenant: '', id: slow.id })) {
      resubEvents.push(describe(ev));
      last = stateOf(ev) ?? last;
      canceling ??= client.cancelTask({ tenant: '', id: slow.id }).then((task) => ({ task }), (error) => ({ error }));
    }
    out({ step, events: resubEvents, last });

    step = 'cancel';
    if (!canceling) throw new Error('resubscribe yielded no event, cancel was never sent');
    const { task, error } = await canceling;
    if (error) throw error;
    out({ step, state: norm(task.status?.state) });
  } catch (e) {
    out({ step, error: errorInfo(e) });
    process.exit(1);
  }
}

async function call() {
  try {
    const { client } = await connect();
    out({ ok: true, state: summary(await client.sendMessage(msg('hello'))).state });
  } catch (e) {
    out({ ok: false, error: errorInfo(e) });
  }
}

const modes = { flow, call };
if (!modes[process.argv[2]]) {
  console.error('usage: node client.mjs flow|call');
  process.exit(2);
}
await modes[process.argv[2]]();
