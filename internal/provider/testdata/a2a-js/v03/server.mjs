// A2A v0.3 echo agent built with @a2a-js/sdk 0.3.14 (speaks only v0.3).
// Usage: PORT=0 node server.mjs   -> prints "LISTENING <port>" once listening on 127.0.0.1.
//   POST /agent                               JSON-RPC
//   /agent/v1/...                             REST (HTTP+JSON binding, the 0.3 client appends /v1)
//   GET  /agent/.well-known/agent-card.json   agent card
//   GET  /agent/_seen                         Authorization / A2A-Version headers of every JSON-RPC/REST call
import express from 'express';
import { DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, restHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import { serveAgent } from '../common.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();

class EchoExecutor {
  canceled = new Set();
  contexts = new Map(); // taskId -> contextId, for cancelTask

  async execute(ctx, bus) {
    const { taskId, contextId, userMessage } = ctx;
    const text = userMessage.parts.filter((p) => p.kind === 'text').map((p) => p.text).join(' ');
    this.contexts.set(taskId, contextId);
    const status = (state, final = false) =>
      bus.publish({ kind: 'status-update', taskId, contextId, final, status: { state, timestamp: now() } });

    bus.publish({ kind: 'task', id: taskId, contextId, status: { state: 'submitted', timestamp: now() }, history: [userMessage] });
    status('working');
    if (text.includes('slow')) {
      for (let i = 0; i < 10; i++) {
        await sleep(300);
        if (this.canceled.has(taskId)) return; // cancelTask already published the final status
        status('working');
      }
    }
    bus.publish({
      kind: 'artifact-update', taskId, contextId, lastChunk: true,
      artifact: { artifactId: 'echo', name: 'echo', parts: [{ kind: 'text', text: `echo: ${text}` }] },
    });
    status('completed', true); // final:true closes the SSE stream in 0.3
    bus.finished();
  }

  async cancelTask(taskId, bus) {
    this.canceled.add(taskId);
    bus.publish({
      kind: 'status-update', taskId, contextId: this.contexts.get(taskId) ?? '', final: true,
      status: { state: 'canceled', timestamp: now() },
    });
    bus.finished();
  }
}

const agentCard = (url) => ({
  protocolVersion: '0.3.0',
  name: 'echo-v03',
  description: 'Echoes text back (A2A v0.3)',
  version: '1.0.0',
  url,
  preferredTransport: 'JSONRPC',
  additionalInterfaces: [
    { transport: 'JSONRPC', url },
    { transport: 'HTTP+JSON', url },
  ],
  capabilities: { streaming: true, pushNotifications: false },
  defaultInputModes: ['text/plain'],
  defaultOutputModes: ['text/plain'],
  skills: [{ id: 'echo', name: 'echo', description: 'Echoes text back', tags: ['echo'] }],
});

await serveAgent(express, (url) => ({
  requestHandler: new DefaultRequestHandler(agentCard(url), new InMemoryTaskStore(), new EchoExecutor()),
  agentCardHandler, jsonRpcHandler, restHandler, userBuilder: UserBuilder.noAuthentication,
}));
