// What the v03 and v1 peers share: the test's contract (environment, output lines, the client's
// flow, the agent's routes), written once. Each client.mjs and server.mjs brings only what its
// SDK line spells differently. This file imports no SDK: each peer passes its own.
import http from 'node:http';

export const { CARD_URL, TOKEN = '', TRANSPORT = 'JSONRPC', OVERRIDE_URL = '' } = process.env;

export const out = (obj) => console.log(JSON.stringify(obj));

// Every request, the card fetch included, goes through this fetch, which adds the bearer token.
export const fetchImpl = (url, init = {}) => {
  const headers = new Headers(init.headers);
  if (TOKEN) headers.set('Authorization', `Bearer ${TOKEN}`);
  return fetch(url, { ...init, headers });
};

// Both SDKs' factories silently fall back to another transport; refuse instead.
export function requireTransport(offered) {
  if (!offered.some((t) => t.toUpperCase() === TRANSPORT.toUpperCase())) {
    throw new Error(`agent card does not offer transport ${TRANSPORT} (offers: ${[...new Set(offered)].join(', ') || 'none'})`);
  }
}

// Finds a numeric JSON-RPC/A2A error code wherever the SDK put it.
const codeOf = (e, depth = 0) => {
  if (!e || typeof e !== 'object' || depth > 3) return null;
  for (const c of [e.code, e.envelopeCode, e.errorResponse?.error?.code]) if (typeof c === 'number') return c;
  return codeOf(e.cause, depth + 1);
};
const errorInfo = (e) => ({
  class: e?.constructor?.name ?? typeof e, name: e?.name ?? null, code: codeOf(e), message: String(e?.message ?? e).slice(0, 300),
});

// runClient runs the mode named by argv[2] with an SDK line's client:
//   flow: card, send, stream, get, resubscribe, cancel; one JSON line per step, exit 1 on the first error.
//   call: one blocking send (of $TEXT, else "hello"); prints {"ok":true,"state":..,"text":..} or
//         {"ok":false,"error":..}; always exit 0.
// sdk: connect() → {client, transport, protocolVersion}; msg(text, nonBlocking); task(id) → the
// params naming a task; summary(result) → {state, text}; describe(event) → "kind:detail";
// stateOf(event) → a 0.3 state name or undefined; taskIdOf(event); norm(state) → a 0.3 state name.
export async function runClient(sdk) {
  const flow = async () => {
    let step = 'card';
    try {
      const { client, transport, protocolVersion } = await sdk.connect();
      out({ step, protocolVersion, transport });

      step = 'send';
      out({ step, ...sdk.summary(await client.sendMessage(sdk.msg('hello'))) });

      step = 'stream';
      const events = [];
      let taskId;
      for await (const ev of client.sendMessageStream(sdk.msg('stream me'))) {
        events.push(sdk.describe(ev));
        taskId ??= sdk.taskIdOf(ev);
      }
      out({ step, events });

      step = 'get';
      const got = await client.getTask({ ...sdk.task(taskId) });
      out({ step, state: sdk.norm(got.status?.state), artifacts: got.artifacts?.length ?? 0 });

      step = 'resubscribe';
      const slow = await client.sendMessage(sdk.msg('slow', true));
      const resubEvents = [];
      let last;
      let canceling; // settled promise of the cancel call, started after the first resubscribe event
      for await (const ev of client.resubscribeTask(sdk.task(slow.id))) {
        resubEvents.push(sdk.describe(ev));
        last = sdk.stateOf(ev) ?? last;
        canceling ??= client.cancelTask(sdk.task(slow.id)).then((task) => ({ task }), (error) => ({ error }));
      }
      out({ step, events: resubEvents, last });

      step = 'cancel';
      if (!canceling) throw new Error('resubscribe yielded no event, cancel was never sent');
      const { task, error } = await canceling;
      if (error) throw error;
      out({ step, state: sdk.norm(task.status?.state) });
    } catch (e) {
      out({ step, error: errorInfo(e) });
      process.exit(1);
    }
  };
  const call = async () => {
    try {
      const { client } = await sdk.connect();
      const { state, text } = sdk.summary(await client.sendMessage(sdk.msg(process.env.TEXT ?? 'hello')));
      out({ ok: true, state, text });
    } catch (e) {
      out({ ok: false, error: errorInfo(e) });
    }
  };
  const modes = { flow, call };
  if (!modes[process.argv[2]]) {
    console.error('usage: node client.mjs flow|call');
    process.exit(2);
  }
  await modes[process.argv[2]]();
}

// serveAgent serves an SDK line's echo agent on 127.0.0.1:$PORT (0: any free port) at /agent:
// JSON-RPC at POST /agent, REST below it, the card at /agent/.well-known/agent-card.json, and
// GET /agent/_seen: the Authorization and A2A-Version headers of every JSON-RPC/REST call. It
// listens first, so that the card can name the real port, and prints "LISTENING <port>" once
// everything is mounted. agent(url) → {requestHandler, agentCardHandler, jsonRpcHandler,
// restHandler, userBuilder}, all of the peer's SDK; a null jsonRpcHandler serves REST alone.
export async function serveAgent(express, agent) {
  const app = express();
  const server = http.createServer(app);
  await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
  const { port } = server.address();
  const { requestHandler, agentCardHandler, jsonRpcHandler, restHandler, userBuilder } = agent(`http://127.0.0.1:${port}/agent`);
  const seen = { authorization: [], a2aVersion: [] };
  app.get('/agent/_seen', (_req, res) => res.json(seen));
  app.use('/agent/.well-known/agent-card.json', agentCardHandler({ agentCardProvider: requestHandler }));
  app.use('/agent', (req, _res, next) => {
    seen.authorization.push(req.get('authorization') ?? '');
    seen.a2aVersion.push(req.get('a2a-version') ?? '');
    next();
  });
  // REST before JSON-RPC: requests the REST router does not match fall through to POST /agent.
  app.use('/agent', restHandler({ requestHandler, userBuilder }));
  if (jsonRpcHandler) app.use('/agent', jsonRpcHandler({ requestHandler, userBuilder }));
  console.log(`LISTENING ${port}`);
}
