// Labelled form controls for the property panels. Hints and the server's problems hang off the control via
// aria-describedby, so each control's accessible name is exactly its label. Text controls keep what the user
// typed while they have focus: the stored value may be normalised ("3." becomes 3) without fighting the caret.

import { useId, useState, type ReactNode } from "react";
import type { Scalar } from "../dag/document";
import { scalarOf } from "./edits";

export interface ControlProps {
  id: string;
  "aria-describedby"?: string;
  "aria-invalid"?: true;
}

interface FieldProps {
  label: string;
  hint?: ReactNode;
  problems?: string[];
}

export function Field(props: FieldProps & { children: (control: ControlProps) => ReactNode }) {
  const id = useId();
  const problems = props.problems ?? [];
  const describedBy = [props.hint ? `${id}-hint` : "", problems.length ? `${id}-problems` : ""].filter(Boolean).join(" ");
  return (
    <div className="dg-field">
      <label htmlFor={id}>{props.label}</label>
      {props.children({ id, "aria-describedby": describedBy || undefined, "aria-invalid": problems.length ? true : undefined })}
      {props.hint && <div id={`${id}-hint`} className="dg-hint">{props.hint}</div>}
      {problems.length > 0 && <div id={`${id}-problems`} className="dg-field-error">{problems.join(" ")}</div>}
    </div>
  );
}

function useFocusDraft(value: string) {
  const [draft, setDraft] = useState<string | null>(null);
  return { shown: draft ?? value, setDraft, onBlur: () => setDraft(null) };
}

export function TextField(props: FieldProps & { value: string | undefined; onChange: (text: string) => void; placeholder?: string }) {
  const { shown, setDraft, onBlur } = useFocusDraft(props.value ?? "");
  return (
    <Field {...props}>
      {(control) => (
        <input
          {...control}
          type="text"
          value={shown}
          placeholder={props.placeholder}
          onBlur={onBlur}
          onChange={(e) => { setDraft(e.target.value); props.onChange(e.target.value); }}
        />
      )}
    </Field>
  );
}

/** A value that is a number when typed as one and text otherwise; empty means "not set". */
export function ScalarField(props: FieldProps & { value: Scalar | undefined; onChange: (value: string | number | undefined) => void; placeholder?: string }) {
  return <TextField {...props} value={props.value === undefined ? "" : String(props.value)} onChange={(t) => props.onChange(scalarOf(t))} />;
}

export function NumberField(props: FieldProps & { value: unknown; onChange: (value: number | undefined) => void; min?: number; step?: number | "any" }) {
  const { shown, setDraft, onBlur } = useFocusDraft(typeof props.value === "number" ? String(props.value) : "");
  return (
    <Field {...props}>
      {(control) => (
        <input
          {...control}
          type="number"
          inputMode="numeric"
          min={props.min}
          step={props.step}
          value={shown}
          onBlur={onBlur}
          onChange={(e) => {
            setDraft(e.target.value);
            const n = e.target.value.trim() === "" ? undefined : Number(e.target.value);
            props.onChange(n !== undefined && Number.isFinite(n) ? n : undefined);
          }}
        />
      )}
    </Field>
  );
}

export interface Option { value: string; label: string }

export function SelectField(props: FieldProps & { value: string; options: Option[]; onChange: (value: string) => void }) {
  // A value the options do not know (written in YAML) is still shown rather than silently replaced.
  const options = props.options.some((o) => o.value === props.value)
    ? props.options
    : [...props.options, { value: props.value, label: props.value }];
  return (
    <Field {...props}>
      {(control) => (
        <select {...control} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
          {options.map((o) => <option key={o.value} value={o.value}>{o.label}</option>)}
        </select>
      )}
    </Field>
  );
}

export function CheckboxField(props: { label: string; checked: boolean; onChange: (checked: boolean) => void; problems?: string[] }) {
  const id = useId();
  const problems = props.problems ?? [];
  return (
    <div className="dg-field dg-checkbox">
      <input id={id} type="checkbox" checked={props.checked} onChange={(e) => props.onChange(e.target.checked)}
        aria-describedby={problems.length ? `${id}-problems` : undefined} />
      <label htmlFor={id}>{props.label}</label>
      {problems.length > 0 && <div id={`${id}-problems`} className="dg-field-error">{problems.join(" ")}</div>}
    </div>
  );
}

/** The messages of problems located at `field` or inside it (`resources` matches `resources.cpu`). */
export function messagesAt(problems: { field: string; message: string }[], field: string): string[] {
  return problems.filter((p) => p.field === field || p.field.startsWith(`${field}.`)).map((p) => p.message);
}

/** Problems no shown field claims; `parameters.` (trailing dot) claims only what is inside it. */
export function unclaimed<P extends { field: string }>(problems: P[], fields: string[]): P[] {
  const claims = (field: string, f: string) => (f.endsWith(".") ? field.startsWith(f) : field === f || field.startsWith(`${f}.`));
  return problems.filter((p) => !fields.some((f) => claims(p.field, f)));
}

export function OtherProblems({ problems }: { problems: { field: string; message: string }[] }) {
  if (!problems.length) return null;
  return (
    <ul className="dg-field-error dg-other-problems">
      {problems.map((p, i) => <li key={i}>{p.field ? <code>{p.field}</code> : null}{p.field ? ": " : ""}{p.message}</li>)}
    </ul>
  );
}
