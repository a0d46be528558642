// A project node's own fields: where the project is, which entry point, and one input per MLproject
// parameter of that entry point (empty = the MLproject's default).

import type { ParameterSpec } from "../api/types";
import type { Scalar } from "../dag/document";
import { messagesAt, ScalarField, SelectField, TextField } from "./fields";
import { useProjectInfo } from "./projectInfo";
import type { PanelProps } from "./NodePanel";

const ENV_MANAGERS = [
  { value: "", label: "default" },
  ...["local", "uv", "virtualenv", "conda"].map((m) => ({ value: m, label: m })),
];

export function ProjectFields({ node, problems, onChange }: PanelProps) {
  const project = useProjectInfo(node.project, node.version);
  const entryPoint = node.entry_point ?? "main";
  const spec = project.info?.entry_points.find((e) => e.name === entryPoint);
  const at = (field: string) => messagesAt(problems, field);

  return (
    <>
      <TextField label="Project URI" value={node.project} problems={at("project")}
        hint="Local path or git URI (https://host/repo.git#subdir)" onChange={(t) => onChange({ project: t }, "project")} />
      <TextField label="Version" value={node.version} problems={at("version")} hint="Git branch, tag or commit"
        onChange={(t) => onChange({ version: t || undefined }, "version")} />
      {project.info ? (
        <SelectField label="Entry point" value={entryPoint} problems={at("entry_point")}
          options={project.info.entry_points.map((e) => ({ value: e.name, label: e.name }))}
          onChange={(v) => onChange({ entry_point: v === "main" ? undefined : v }, "entry_point")} />
      ) : (
        <TextField label="Entry point" value={node.entry_point} placeholder="main" problems={at("entry_point")}
          hint={project.loading ? "Reading the project…" : projectMessage(project.error, node.project)}
          onChange={(t) => onChange({ entry_point: t || undefined }, "entry_point")} />
      )}
      <ParameterFields node={node} specs={spec?.parameters ?? []} problems={problems} onChange={onChange} />
      <SelectField label="Env manager" value={node.env_manager ?? ""} options={ENV_MANAGERS} problems={at("env_manager")}
        onChange={(v) => onChange({ env_manager: v || undefined }, "env_manager")} />
    </>
  );
}

function projectMessage(error: unknown, uri: string | undefined): string {
  if (!uri) return "Set the project URI to choose among its entry points.";
  if (error) return `The project cannot be read: ${error instanceof Error ? error.message : String(error)}`;
  return "";
}

/** The entry point's parameters, then any the document sets that the MLproject does not declare. */
function ParameterFields({ node, specs, problems, onChange }: PanelProps & { specs: ParameterSpec[] }) {
  const values = node.parameters ?? {};
  const declared = new Set(specs.map((s) => s.name));
  const extra = Object.keys(values).filter((name) => !declared.has(name));
  const set = (name: string, value: Scalar | undefined) => {
    const next: Record<string, Scalar> = { ...values };
    if (value === undefined) delete next[name];
    else next[name] = value;
    onChange({ parameters: Object.keys(next).length ? next : undefined }, `parameters.${name}`);
  };
  const field = (name: string, hint: string, placeholder?: string) => (
    <ScalarField key={name} label={`Parameter ${name}`} value={values[name]} hint={hint} placeholder={placeholder}
      problems={messagesAt(problems, `parameters.${name}`)} onChange={(v) => set(name, v)} />
  );
  return (
    <>
      {specs.map((s) => field(s.name, s.default === null ? `${s.type}, required` : `${s.type}, default ${s.default}`, s.default ?? undefined))}
      {extra.map((name) => field(name, "not declared by the entry point shown"))}
    </>
  );
}
