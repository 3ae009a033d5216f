// A2A v1.0 echo agent built with @a2a-js/sdk 1.3.0 (speaks only v1.0: legacyCompat is off).
// Usage: PORT=0 node server.mjs   -> prints "LISTENING <port>" once listening on 127.0.0.1.
// With REST_ONLY=1 it serves, and its card names, the REST binding alone (no JSON-RPC).
//   POST /agent                               JSON-RPC
//   /agent/message:send, /agent/tasks/...     REST (HTTP+JSON binding, no /v1 prefix in 1.x)
//   GET  /agent/.well-known/agent-card.json   agent card
//   GET  /agent/_seen                         Authorization / A2A-Version headers of every JSON-RPC/REST call
import express from 'express';
import { TaskState } from '@a2a-js/sdk';
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, restHandler, UserBuilder } from '@a2a-js/sdk/server/express';
import { serveAgent } from '../common.mjs';

const restOnly = process.env.REST_ONLY === '1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString();
// In-memory objects use the proto-TS shapes: a Part's content is a {$case, value} oneof, enums are numbers.
const textPart = (text) => ({ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' });

class EchoExecutor {
  canceled = new Set();
  contexts = new Map(); // taskId -> contextId, for cancelTask

  async execute(ctx, bus) {
    const { taskId, contextId, userMessage } = ctx;
    const text = userMessage.parts.filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join(' ');
    this.contexts.set(taskId, contextId);
    const status = (state) => bus.publish(AgentEvent.statusUpdate({
      taskId, contextId, metadata: undefined, status: { state, message: undefined, timestamp: now() },
    }));

    // The 1.x server insists that the first event is a Task (or a Message).
    bus.publish(AgentEvent.task({
      id: taskId, contextId, artifacts: [], history: [userMessage], metadata: undefined,
      status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() },
    }));
    status(TaskState.TASK_STATE_WORKING);
    if (text.includes('slow')) {
      for (let i = 0; i < 10; i++) {
        await sleep(300);
        if (this.canceled.has(taskId)) return; // cancelTask already published the canceled status
        status(TaskState.TASK_STATE_WORKING);
      }
    }
    bus.publish(AgentEvent.artifactUpdate({
      taskId, contextId, append: false, lastChunk: true, metadata: undefined,
      artifact: { artifactId: 'echo', name: 'echo', description: '', parts: [textPart(`echo: ${text}`)], metadata: undefined, extensions: [] },
    }));
    status(TaskState.TASK_STATE_COMPLETED); // a terminal state closes the stream (1.x has no `final` flag)
  }

  async cancelTask(taskId, bus) {
    this.canceled.add(taskId);
    bus.publish(AgentEvent.statusUpdate({
      taskId, contextId: this.contexts.get(taskId) ?? '', metadata: undefined,
      status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: now() },
    }));
  }
}

// Served verbatim (JSON.stringify) by agentCardHandler.
const agentCard = (url) => ({
  name: 'echo-v1',
  description: 'Echoes text back (A2A v1.0)',
  version: '1.0.0',
  supportedInterfaces: [
    ...(restOnly ? [] : [{ url, protocolBinding: 'JSONRPC', protocolVersion: '1.0', tenant: '' }]),
    { url, protocolBinding: 'HTTP+JSON', protocolVersion: '1.0', tenant: '' },
  ],
  capabilities: { streaming: true, pushNotifications: false, extensions: [] },
  securitySchemes: {},
  securityRequirements: [],
  defaultInputModes: ['text/plain'],
  defaultOutputModes: ['text/plain'],
  skills: [{
    id: 'echo', name: 'echo', description: 'Echoes text back', tags: ['echo'],
    examples: [], inputModes: [], outputModes: [], securityRequirements: [],
  }],
  signatures: [],
});

await serveAgent(express, (url) => ({
  requestHandler: new DefaultRequestHandler(agentCard(url), new InMemoryTaskStore(), new EchoExecutor()),
  agentCardHandler, jsonRpcHandler: restOnly ? null : jsonRpcHandler, restHandler, userBuilder: UserBuilder.noAuthentication,
}));
