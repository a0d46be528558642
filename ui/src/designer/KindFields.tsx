// The fields of source and inference nodes (project nodes have their own file: they talk to the server).

import { CheckboxField, messagesAt, NumberField, TextField } from "./fields";
import type { PanelProps } from "./NodePanel";

export function SourceFields({ node, problems, onChange }: PanelProps) {
  const at = (field: string) => messagesAt(problems, field);
  return (
    <>
      <TextField label="Source URI" value={node.uri} problems={at("uri")}
        hint="Local directory, s3://, gs://, runs:/… or models:/…" onChange={(t) => onChange({ uri: t }, "uri")} />
      <TextField label="Pattern" value={node.pattern} placeholder="*.csv" problems={at("pattern")}
        hint="Glob on the relative path" onChange={(t) => onChange({ pattern: t || undefined }, "pattern")} />
      <CheckboxField label="Incremental" checked={node.incremental === true} problems={at("incremental")}
        onChange={(checked) => onChange({ incremental: checked || undefined }, "incremental")} />
    </>
  );
}

/** "a, b ,c" as ["a", "b", "c"]; nothing typed means "all columns". */
const columnsOf = (text: string) => {
  const columns = text.split(",").map((c) => c.trim()).filter(Boolean);
  return columns.length ? columns : undefined;
};

export function InferenceFields({ node, problems, onChange }: PanelProps) {
  const at = (field: string) => messagesAt(problems, field);
  return (
    <>
      <TextField label="Model URI" value={node.model} problems={at("model")}
        hint="models:/name/version, models:/name@alias or runs:/<id>/path" onChange={(t) => onChange({ model: t }, "model")} />
      <TextField label="Prediction column" value={node.prediction_column} placeholder="prediction" problems={at("prediction_column")}
        onChange={(t) => onChange({ prediction_column: t || undefined }, "prediction_column")} />
      <TextField label="Feature columns" value={node.columns?.join(", ")} placeholder="all columns" problems={at("columns")}
        hint="Comma separated" onChange={(t) => onChange({ columns: columnsOf(t) }, "columns")} />
      <NumberField label="Batch size" value={node.batch_size} min={1} problems={at("batch_size")}
        hint="Rows per model call (default 10000)" onChange={(v) => onChange({ batch_size: v }, "batch_size")} />
    </>
  );
}
