/** Obra's library API: run, resume and answer tasks from a Node script. */
export { runTask, resumeRun, answerRun, buildMachines, agentFromConfig, claudeOptionsFromConfig, newRunId, systemClock } from './engine/runner.js';
export type { Clock, EngineEvent, EngineOptions, StartOptions } from './engine/runner.js';
export type { RunResult, IterationView } from './engine/run-result.js';
export { loadConfig } from './config/load.js';
export type { LoadedConfig, ConfigLayers } from './config/load.js';
export { configSchema, defaultConfig } from './config/schema.js';
export type { ObraConfig, ConfigInput } from './config/schema.js';
export { ClaudeCodeAgent } from './agents/claude-code-agent.js';
export type { ClaudeCodeAgentOptions } from './agents/claude-code-agent.js';
export { ScriptedAgent } from './agents/scripted-agent.js';
export type { ScriptedReply, ReplyScript } from './agents/scripted-agent.js';
export type { Agent, AgentCallRequest, AgentProgress } from './agents/agent.js';
export { RunStore } from './store/run-store.js';
export { UserError } from './core/errors.js';
export * from './core/types.js';
export { iterationMachine, createIterationMachine } from '../machines/iteration.machine.js';
export { taskMachine, createTaskMachine } from '../machines/task.machine.js';
// Seeing runs: the Stately inspector (live and replayed), the offline viewer, the machines as data.
export { startInspectorServer, DEFAULT_INSPECTOR_PORT } from './inspect/server.js';
export type { InspectorServer, InspectorServerOptions } from './inspect/server.js';
export type { InspectOption, InspectServerOption } from './inspect/engine-hook.js';
export { replayIntoInspector, inspectorFramesFromJournal, feedFrames } from './inspect/replay.js';
export type { ReplayInspectOptions, ReplayFrame } from './inspect/replay.js';
export { startViewerServer, DEFAULT_VIEWER_PORT } from './viewer/server.js';
export type { ViewerServer, ViewerServerOptions } from './viewer/server.js';
export { machineConfigs, studioCode } from './inspect/machine-export.js';
export { mermaidCharts } from './inspect/mermaid.js';
