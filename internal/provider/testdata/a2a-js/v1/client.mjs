// A2A v1.0 client built with @a2a-js/sdk 1.3.0 (ClientFactory, default options: legacyCompat off, so it
// speaks only v1.0), discovering the agent from a card URL only.
// Usage: CARD_URL=http://host/.../agent-card.json TOKEN=secret TRANSPORT=JSONRPC|HTTP+JSON node client.mjs flow|call
//   OVERRIDE_URL: replace every interface URL of the fetched card before building the client.
// The modes and their output are ../common.mjs's runClient.
import { randomUUID } from 'node:crypto';
import { Role, taskStateToJSON } from '@a2a-js/sdk';
import {
  ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver,
  JsonRpcTransportFactory, RestTransportFactory,
} from '@a2a-js/sdk/client';
import { CARD_URL, OVERRIDE_URL, TRANSPORT, fetchImpl, requireTransport, runClient } from '../common.mjs';

async function connect() {
  const resolver = new DefaultAgentCardResolver({ fetchImpl });
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
    preferredTransports: [TRANSPORT],
    cardResolver: resolver,
  }));
  const card = await resolver.resolve(CARD_URL, ''); // path '' = CARD_URL is used as is
  if (OVERRIDE_URL) for (const i of card.supportedInterfaces ?? []) i.url = OVERRIDE_URL;
  requireTransport((card.supportedInterfaces ?? []).map((i) => i.protocolBinding));
  const client = await factory.createFromAgentCard(card);
  return { client, protocolVersion: client.protocolVersion, transport: client.transport.protocolName };
}

// In-memory objects use the proto-TS shapes: a Part's content is a {$case, value} oneof, enums are numbers.
const textOf = (parts = []) => parts.filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join('');
// TaskState enum -> 0.3 name: TASK_STATE_INPUT_REQUIRED -> input-required, TASK_STATE_UNSPECIFIED -> unknown.
const norm = (state) => {
  const s = taskStateToJSON(state).replace(/^TASK_STATE_/, '').toLowerCase().replace(/_/g, '-');
  return s === 'unspecified' || s === 'unrecognized' ? 'unknown' : s;
};

// Stream events are StreamResponse { payload: { $case: 'task'|'message'|'statusUpdate'|'artifactUpdate', value } }.
await runClient({
  connect,
  msg: (text, nonBlocking) => ({
    tenant: '',
    message: {
      messageId: randomUUID(), role: Role.ROLE_USER,
      parts: [{ content: { $case: 'text', value: text }, filename: '', mediaType: 'text/plain' }],
    },
    ...(nonBlocking ? { configuration: { returnImmediately: true } } : {}),
  }),
  task: (id) => ({ tenant: '', id }),
  norm,
  stateOf: ({ payload: { $case, value } }) => ($case === 'task' || $case === 'statusUpdate' ? norm(value.status?.state) : undefined),
  taskIdOf: ({ payload: { $case, value } }) => ($case === 'task' ? value.id : value.taskId),
  describe: ({ payload: { $case, value } }) => ({
    task: () => `task:${norm(value.status?.state)}`,
    message: () => `message:${textOf(value.parts)}`,
    statusUpdate: () => `status:${norm(value.status?.state)}`,
    artifactUpdate: () => `artifact:${textOf(value.artifact?.parts)}`,
  }[$case]?.() ?? `unknown:${$case}`),
  // sendMessage returns a Task or a Message (only a Message has messageId).
  summary: (r) => ('messageId' in r
    ? { state: null, text: textOf(r.parts) }
    : { state: norm(r.status?.state), text: (r.artifacts ?? []).map((a) => textOf(a.parts)).join('') }),
});
