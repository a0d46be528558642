// Undo/redo over document snapshots. Documents are immutable values, so a snapshot is just a reference.
// Consecutive edits of the same field (typing) within a short pause collapse into one step.

export interface History<T> {
  past: T[];
  present: T;
  future: T[];
  lastKey: string | null;
  lastAt: number;
}

const LIMIT = 100;
const COALESCE_MS = 1500;

export function startHistory<T>(present: T): History<T> {
  return { past: [], present, future: [], lastKey: null, lastAt: 0 };
}

/** Records `next` as the new present; `key` names the edit (e.g. the field) so keystrokes merge into one step. */
export function pushHistory<T>(history: History<T>, next: T, key?: string, now = Date.now()): History<T> {
  if (next === history.present) return history;
  if (key && key === history.lastKey && now - history.lastAt < COALESCE_MS) {
    return { ...history, present: next, future: [], lastAt: now };
  }
  return { past: [...history.past, history.present].slice(-LIMIT), present: next, future: [], lastKey: key ?? null, lastAt: now };
}

export function undoHistory<T>(history: History<T>): History<T> {
  if (!history.past.length) return history;
  const previous = history.past[history.past.length - 1];
  return { past: history.past.slice(0, -1), present: previous, future: [history.present, ...history.future], lastKey: null, lastAt: 0 };
}

export function redoHistory<T>(history: History<T>): History<T> {
  if (!history.future.length) return history;
  const [next, ...rest] = history.future;
  return { past: [...history.past, history.present].slice(-LIMIT), present: next, future: rest, lastKey: null, lastAt: 0 };
}
