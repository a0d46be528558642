// `/schedules`: cron schedules of stored DAGs — pause, resume, delete, create. `?dag=name` preselects the
// DAG in the form (the designer can link here).

import { useEffect, useState } from "react";
import { useSearchParams } from "react-router-dom";
import { deleteSchedule, listSchedules, updateSchedule } from "../api/endpoints";
import type { ScheduleInfo } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { ConfirmDialog } from "./ConfirmDialog";
import { ScheduleForm } from "./ScheduleForm";
import { ScheduleTable } from "./ScheduleTable";
import "./pages.css";

const REFRESH_MS = 15_000;

export function SchedulesPage() {
  const [params] = useSearchParams();
  const [schedules, setSchedules] = useState<ScheduleInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [listError, setListError] = useState<unknown>(null);
  const [pending, setPending] = useState<ReadonlySet<number>>(new Set());
  const [deleting, setDeleting] = useState<ScheduleInfo | null>(null);

  useEffect(() => {
    // Ticks start runs and move "next run" on by themselves: keep the table current while it is open.
    const load = () => listSchedules().then((page) => {
      setSchedules(page.items);
      setListError(null);
    }, setListError);
    load();
    const timer = window.setInterval(load, REFRESH_MS);
    return () => window.clearInterval(timer);
  }, []);

  const replace = (updated: ScheduleInfo) =>
    setSchedules((list) => list?.map((s) => (s.id === updated.id ? updated : s)) ?? list);
  const toggle = async (schedule: ScheduleInfo) => {
    setError(null);
    setPending((set) => new Set(set).add(schedule.id));
    try {
      replace(await updateSchedule(schedule.id, { enabled: !schedule.enabled }));
    } catch (failure) {
      setError(failure);
    } finally {
      setPending((set) => new Set([...set].filter((id) => id !== schedule.id)));
    }
  };
  const remove = async (id: number) => {
    await deleteSchedule(id);
    setSchedules((list) => list?.filter((s) => s.id !== id) ?? list);
  };

  return (
    <div className="page">
      <h1>Schedules</h1>
      <ErrorBanner error={listError} />
      <ErrorBanner error={error} />
      {!schedules && !listError && <p role="status" className="muted">Loading schedules…</p>}
      {schedules?.length === 0 && <p className="empty">No schedules yet — create one below.</p>}
      {schedules && schedules.length > 0 && (
        <ScheduleTable schedules={schedules} pending={pending} onToggle={toggle} onDelete={setDeleting} />
      )}
      <ScheduleForm initialDag={params.get("dag") ?? undefined}
        onCreated={(created) => setSchedules((list) => [...(list ?? []), created])} />
      {deleting && (
        <ConfirmDialog
          title="Delete schedule"
          message={`Delete schedule ${deleting.id} of ${deleting.dag} (${deleting.cron})? The runs it started stay.`}
          confirmLabel="Delete"
          onConfirm={() => remove(deleting.id)}
          onClose={() => setDeleting(null)}
        />
      )}
    </div>
  );
}
