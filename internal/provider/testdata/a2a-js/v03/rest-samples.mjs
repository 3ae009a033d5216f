// Writes what @a2a-js/sdk 0.3 puts on the wire of A2A 0.3's HTTP+JSON binding for a set of
// 0.3 values: each value as JSON-RPC carries it ("jsonrpc") and as the SDK's REST transport
// writes it ("rest", ToProto then the proto type's toJSON). internal/a2aversion's tests read the
// output (testdata/js-0.3-rest.json) to check the router's reading against the SDK's.
// Usage: node rest-samples.mjs > ../../../../a2aversion/testdata/js-0.3-rest.json
import { readdirSync } from 'node:fs';

// The SDK keeps its proto types and converters in an internal chunk (the REST transport's own);
// it is found by what it exports, whatever the bundler named it.
const dist = new URL('./node_modules/@a2a-js/sdk/dist/', import.meta.url);
let sdk;
for (const f of readdirSync(dist).filter((f) => f.startsWith('chunk-') && f.endsWith('.js'))) {
  const m = await import(new URL(f, dist)).catch(() => ({})); // (chunks of optional transports need packages not installed)
  if (m.ToProto && m.SendMessageRequest && m.StreamResponse) sdk = m;
}
if (!sdk) throw new Error('no chunk of @a2a-js/sdk exports ToProto');
const { ToProto, SendMessageRequest, SendMessageResponse, StreamResponse, Task } = sdk;

const message = {
  kind: 'message', role: 'user', messageId: 'm1', contextId: 'c1', taskId: 't1', metadata: { a: 1 },
  parts: [
    { kind: 'text', text: 'hi' },
    { kind: 'file', file: { uri: 'http://x/f', mimeType: 'text/plain' } },
    { kind: 'file', file: { bytes: 'aGk=', mimeType: 'text/plain' } },
    { kind: 'data', data: { k: 'v' } },
  ],
};
const agentMessage = { ...message, role: 'agent' };
const task = {
  kind: 'task', id: 't1', contextId: 'c1',
  status: { state: 'working', message: agentMessage, timestamp: '2026-01-01T00:00:00.000Z' },
  history: [message], artifacts: [{ artifactId: 'a1', name: 'n', parts: [{ kind: 'text', text: 'out' }] }], metadata: { x: 'y' },
};
const params = { message, configuration: { blocking: true, acceptedOutputModes: ['text/plain'], historyLength: 3 }, metadata: { m: 1 } };
const status = { kind: 'status-update', taskId: 't1', contextId: 'c1', final: true, status: { state: 'input-required' } };
const artifact = { kind: 'artifact-update', taskId: 't1', contextId: 'c1', append: true, lastChunk: true, artifact: { artifactId: 'a1', parts: [{ kind: 'text', text: 'x' }] } };
const canceled = { ...task, status: { state: 'canceled' } };

const sample = (jsonrpc, rest) => ({ jsonrpc, rest });
console.log(JSON.stringify({
  sendRequest: sample(params, SendMessageRequest.toJSON(ToProto.messageSendParams(params))),
  sendTask: sample(task, SendMessageResponse.toJSON(ToProto.messageSendResult(task))),
  sendMessage: sample(agentMessage, SendMessageResponse.toJSON(ToProto.messageSendResult(agentMessage))),
  getTask: sample(canceled, Task.toJSON(ToProto.task(canceled))),
  streamStatus: sample(status, StreamResponse.toJSON(ToProto.messageStreamResult(status))),
  streamArtifact: sample(artifact, StreamResponse.toJSON(ToProto.messageStreamResult(artifact))),
  streamTask: sample(task, StreamResponse.toJSON(ToProto.messageStreamResult(task))),
}, null, 1));
