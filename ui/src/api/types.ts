// The REST API's bodies, as /api/v1/openapi.json publishes them (server/schemas.py).

export interface Page<T> {
  items: T[];
  total: number;
  offset: number;
  next_offset: number | null;
}

export interface DagSummary {
  name: string;
  latest_version: number;
  versions: number;
  description: string | null;
  updated_at: string;
  last_run_id: string | null;
  last_run_state: string | null;
}

export interface DagVersion {
  name: string;
  version: number;
  description: string | null;
  yaml: string;
  created_by: string | null;
  created_at: string;
}

export interface DagVersionInfo {
  version: number;
  description: string | null;
  created_by: string | null;
  created_at: string;
}

export interface ProblemLocation {
  location: string;
  message: string;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: ProblemLocation[] | null;
}

export interface StageStatus {
  node: string;
  state: string;
  partitions: number | null;
  counts: Record<string, number>;
  error: string | null;
}

export interface RunInfo {
  id: string;
  dag: string;
  dag_version: number | null;
  state: string;
  created_by: string | null;
  created_at: string;
  finished_at: string | null;
  error: string | null;
  cancel_requested: string | null;
  overrides: Record<string, string>;
  mlflow_run_id: string | null;
  experiment_id: string | null;
  mlflow_url: string | null;
  schedule_id: number | null;
  window_start: string | null;
  window_end: string | null;
}

export interface RunDetail extends RunInfo {
  stages: StageStatus[];
}

export interface TaskStatus {
  node: string;
  partition: number;
  state: string;
  attempts: number;
  input_bytes: number;
  error: string | null;
  mlflow_run_id: string | null;
  mlflow_url: string | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface ParameterSpec {
  name: string;
  type: string;
  default: string | null;
}

export interface EntryPointSpec {
  name: string;
  parameters: ParameterSpec[];
}

export interface ProjectInfo {
  uri: string;
  version: string | null;
  name: string | null;
  entry_points: EntryPointSpec[];
}

export interface ValidationResult {
  valid: boolean;
  errors: ProblemLocation[];
}

export type Overlap = "skip" | "queue";

export interface ScheduleInfo {
  id: number;
  dag: string;
  cron: string;
  timezone: string;
  overlap: Overlap;
  overrides: Record<string, string>;
  enabled: boolean;
  next_fire_at: string | null;
  last_fire_at: string | null;
  queued_fire_at: string | null;
  last_error: string | null;
  last_run_id: string | null;
  last_run_state: string | null;
  created_by: string | null;
  created_at: string;
}

export interface PodDefaults {
  [key: string]: unknown;
}

export interface ClusterInfo {
  name: string;
  kind: string;
  context: string;
  namespace: string;
  server: string;
  auth: string;
  image: string | null;
  pod: PodDefaults;
  created_by: string | null;
  created_at: string;
  checked_at: string | null;
  reachable: boolean | null;
  check_message: string | null;
}

export interface ClusterCheck {
  name: string;
  reachable: boolean;
  message: string;
  server_version: string | null;
  checked_at: string;
}

export interface WhoAmI {
  user: string;
  admin: boolean;
  auth: boolean;
}
