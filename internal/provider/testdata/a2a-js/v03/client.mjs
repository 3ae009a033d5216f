// A2A v0.3 client built with @a2a-js/sdk 0.3.14 (ClientFactory), discovering the agent from a card URL only.
// Usage: CARD_URL=http://host/.../agent-card.json TOKEN=secret TRANSPORT=JSONRPC|HTTP+JSON node client.mjs flow|call
//   OVERRIDE_URL: replace every interface URL of the fetched card before building the client.
// The modes and their output are ../common.mjs's runClient.
import { randomUUID } from 'node:crypto';
import {
  ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver,
  JsonRpcTransportFactory, RestTransport, RestTransportFactory,
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
  if (OVERRIDE_URL) {
    card.url = OVERRIDE_URL;
    for (const i of card.additionalInterfaces ?? []) i.url = OVERRIDE_URL;
  }
  requireTransport([...(card.url ? [card.preferredTransport ?? 'JSONRPC'] : []), ...(card.additionalInterfaces ?? []).map((i) => i.transport)]);
  const client = await factory.createFromAgentCard(card);
  return { client, protocolVersion: '0.3', transport: client.transport instanceof RestTransport ? 'HTTP+JSON' : 'JSONRPC' };
}

const textOf = (parts = []) => parts.filter((p) => p.kind === 'text').map((p) => p.text).join('');

await runClient({
  connect,
  msg: (text, nonBlocking) => ({
    message: { kind: 'message', role: 'user', messageId: randomUUID(), parts: [{ kind: 'text', text }] },
    ...(nonBlocking ? { configuration: { blocking: false } } : {}),
  }),
  task: (id) => ({ id }),
  // 0.3 states are already the names the output uses.
  norm: (state) => state,
  stateOf: (ev) => (ev.kind === 'task' || ev.kind === 'status-update' ? ev.status?.state : undefined),
  taskIdOf: (ev) => (ev.kind === 'task' ? ev.id : ev.taskId),
  describe: (ev) => ({
    task: () => `task:${ev.status?.state}`,
    message: () => `message:${textOf(ev.parts)}`,
    'status-update': () => `status:${ev.status?.state}`,
    'artifact-update': () => `artifact:${textOf(ev.artifact?.parts)}`,
  }[ev.kind]?.() ?? `unknown:${ev.kind}`),
  summary: (r) => (r.kind === 'message'
    ? { state: null, text: textOf(r.parts) }
    : { state: r.status?.state, text: (r.artifacts ?? []).map((a) => textOf(a.parts)).join('') }),
});
