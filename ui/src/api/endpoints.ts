// Named calls for every endpoint the UI uses; pages import these, never raw paths.

import { getIfChanged, getJson, getText, sendJson, sendText } from "./client";
import type {
  ClusterCheck, ClusterInfo, DagSummary, DagVersion, DagVersionInfo, Overlap, Page, ProjectInfo,
  RunDetail, RunInfo, ScheduleInfo, TaskStatus, ValidationResult, WhoAmI,
} from "./types";

const enc = encodeURIComponent;

export const whoami = () => getJson<WhoAmI>("whoami");

// DAGs
export const listDags = (search?: string, offset = 0, limit = 50) =>
  getJson<Page<DagSummary>>("dags", { search, offset, limit });
export const getDag = (name: string, version?: number) =>
  getJson<DagVersion>(version ? `dags/${enc(name)}/versions/${version}` : `dags/${enc(name)}`);
export const listVersions = (name: string) => getJson<DagVersionInfo[]>(`dags/${enc(name)}/versions`);
export const createDag = (yaml: string, description?: string) =>
  sendJson<DagVersion>("POST", "dags", { yaml, description });
export const saveDag = (name: string, yaml: string, description?: string) =>
  sendJson<DagVersion>("PUT", `dags/${enc(name)}`, { yaml, description });
export const deleteDag = (name: string) => sendJson<void>("DELETE", `dags/${enc(name)}`);
export const importDag = (yaml: string) => sendText<DagVersion>("POST", "dags/import", yaml);
export const exportDag = (name: string, version?: number) => getText(`dags/${enc(name)}/export`, { version });
/** Checks a document as a run would (structure, projects, entry points, parameter types) without saving. */
export const validateDag = (yaml: string) => sendJson<ValidationResult>("POST", "dags/validate", { yaml });
/** An MLproject's entry points and their parameters, resolved by the server (local path or git URI). */
export const describeProject = (uri: string, version?: string) =>
  getJson<ProjectInfo>("projects", { uri, version });

// Runs
export const listRuns = (query: { dag?: string; state?: string; offset?: number; limit?: number } = {}) =>
  getJson<Page<RunInfo>>("runs", query);
export const startRun = (dag: string, overrides: Record<string, string>, version?: number) =>
  sendJson<RunDetail>("POST", "runs", { dag, overrides, version });
export const getRun = (id: string) => getJson<RunDetail>(`runs/${enc(id)}`);
export const pollRun = (id: string, etag: string | null) => getIfChanged<RunDetail>(`runs/${enc(id)}`, etag);
export const listTasks = (id: string, query: { node?: string; state?: string; offset?: number; limit?: number }) =>
  getJson<Page<TaskStatus>>(`runs/${enc(id)}/tasks`, query);
export const pollTasks = (id: string, etag: string | null, query: { node?: string; state?: string; offset?: number; limit?: number }) =>
  getIfChanged<Page<TaskStatus>>(`runs/${enc(id)}/tasks`, etag, query);
export const cancelRun = (id: string) => sendJson<{ id: string; state: string; detail: string }>("POST", `runs/${enc(id)}/cancel`);
export const retryRun = (id: string) => sendJson<{ id: string; reset_tasks: number }>("POST", `runs/${enc(id)}/retry`);
export const taskLogPath = (id: string, node: string, partition: number) =>
  `runs/${enc(id)}/tasks/${enc(node)}/${partition}/log`;

// Schedules
export const listSchedules = (dag?: string) => getJson<Page<ScheduleInfo>>("schedules", { dag, limit: 500 });
export const createSchedule = (body: { dag: string; cron: string; timezone: string; overlap: Overlap; overrides: Record<string, string>; enabled: boolean }) =>
  sendJson<ScheduleInfo>("POST", "schedules", body);
export const updateSchedule = (id: number, body: Partial<{ cron: string; timezone: string; overlap: Overlap; overrides: Record<string, string>; enabled: boolean }>) =>
  sendJson<ScheduleInfo>("PATCH", `schedules/${id}`, body);
export const deleteSchedule = (id: number) => sendJson<void>("DELETE", `schedules/${id}`);

// Clusters
export const listClusters = () => getJson<ClusterInfo[]>("clusters");
export const registerCluster = (body: { name: string; kubeconfig: string; context?: string; namespace?: string; image?: string }) =>
  sendJson<ClusterInfo>("POST", "clusters", body);
export const checkCluster = (name: string) => sendJson<ClusterCheck>("POST", `clusters/${enc(name)}/check`);
export const deleteCluster = (name: string) => sendJson<void>("DELETE", `clusters/${enc(name)}`);
/** The DAG document a run was started from, as YAML text. */
export const getRunDag = (id: string) => getText(`runs/${enc(id)}/dag`);
