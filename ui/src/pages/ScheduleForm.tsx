// "New schedule": a stored DAG, a cron, its time zone and what a tick does while a run is still going.
// The server checks the cron, the DAG and its projects; its problems are shown under the form.

import { useEffect, useState, type FormEvent } from "react";
import { createSchedule, listDags } from "../api/endpoints";
import type { Overlap, ScheduleInfo } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";

const OVERLAP_HINTS: Record<Overlap, string> = {
  skip: "skip: a tick that comes while this schedule's run is still going is dropped.",
  queue: "queue: one tick waits (later ones coalesce into it) and fires as soon as that run ends.",
};
const TIME_ZONES = Intl.supportedValuesOf("timeZone");

export function ScheduleForm({ initialDag, onCreated }: { initialDag?: string; onCreated: (s: ScheduleInfo) => void }) {
  const [dags, setDags] = useState<string[] | null>(null);
  const [dag, setDag] = useState(initialDag ?? "");
  const [cron, setCron] = useState("");
  const [timezone, setTimezone] = useState("UTC");
  const [overlap, setOverlap] = useState<Overlap>("skip");
  const [paused, setPaused] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    listDags(undefined, 0, 500).then((page) => {
      const names = page.items.map((d) => d.name);
      setDags(names);
      setDag((current) => (names.includes(current) ? current : names[0] ?? ""));
    }, setError);
  }, []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await createSchedule({ dag, cron: cron.trim(), timezone: timezone.trim(), overlap, overrides: {}, enabled: !paused }));
      setCron("");
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="side-form" onSubmit={submit} aria-labelledby="new-schedule">
      <h2 id="new-schedule">New schedule</h2>
      <p className="field-hint">
        Each tick runs the DAG's newest version. Ticks missed while no server was running coalesce into one run.
      </p>
      <div className="fields">
        <div>
          <label htmlFor="schedule-dag">DAG</label>
          <select id="schedule-dag" value={dag} onChange={(e) => setDag(e.target.value)} required disabled={!dags?.length}>
            {!dags && <option value="">Loading DAGs…</option>}
            {dags?.length === 0 && <option value="">No DAGs stored yet</option>}
            {dags?.map((name) => <option key={name} value={name}>{name}</option>)}
          </select>
        </div>
        <div>
          <label htmlFor="schedule-cron">Cron</label>
          <input id="schedule-cron" value={cron} onChange={(e) => setCron(e.target.value)} required maxLength={100}
            placeholder="0 * * * *" aria-describedby="schedule-cron-hint" spellCheck={false} />
          <p id="schedule-cron-hint" className="field-hint">
            5 fields (minute hour day-of-month month day-of-week), or 6 with seconds last (<code>* * * * * */5</code>: every 5 s).
          </p>
        </div>
        <div>
          <label htmlFor="schedule-timezone">Time zone</label>
          <input id="schedule-timezone" value={timezone} onChange={(e) => setTimezone(e.target.value)} required
            maxLength={64} list="schedule-timezones" aria-describedby="schedule-timezone-hint" />
          <datalist id="schedule-timezones">
            {TIME_ZONES.map((zone) => <option key={zone} value={zone} />)}
          </datalist>
          <p id="schedule-timezone-hint" className="field-hint">The IANA zone the cron is read in.</p>
        </div>
        <div>
          <label htmlFor="schedule-overlap">Overlap</label>
          <select id="schedule-overlap" value={overlap} onChange={(e) => setOverlap(e.target.value as Overlap)}
            aria-describedby="schedule-overlap-hint">
            <option value="skip">skip</option>
            <option value="queue">queue</option>
          </select>
          <p id="schedule-overlap-hint" className="field-hint">{OVERLAP_HINTS[overlap]}</p>
        </div>
      </div>
      <label className="checkbox">
        <input type="checkbox" checked={paused} onChange={(e) => setPaused(e.target.checked)} /> Start paused
      </label>
      <ErrorBanner error={error} />
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy || !dag} aria-busy={busy}>Create schedule</button>
      </div>
    </form>
  );
}
