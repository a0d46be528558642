// A node's tasks, fetched 200 at a time for the rows in view only: pages are cached by offset, pages far from
// the view are dropped, and the visible ones are re-read (ETag) while the run is active.

import { useCallback, useEffect, useRef, useState } from "react";
import { pollTasks } from "../api/endpoints";
import type { TaskStatus } from "../api/types";
import { usePolling } from "./usePolling";

export const PAGE_SIZE = 200;
const REFRESH_MS = 2000;
/** Pages kept on either side of the view, so scrolling back a little needs no new request. */
const KEEP_PAGES = 3;

interface CachedPage { items: TaskStatus[]; etag: string | null }
/** Everything fetched for one query (run, node, state filter); answers for an older query are dropped. */
interface Fetched { query: string; pages: Map<number, CachedPage>; total: number | null; error: unknown }

export interface TaskPages {
  total: number | null;
  row: (index: number) => TaskStatus | undefined;
  error: unknown;
}

function pageOffsets(first: number, last: number): number[] {
  const offsets: number[] = [];
  for (let o = Math.floor(first / PAGE_SIZE) * PAGE_SIZE; o <= Math.max(first, last); o += PAGE_SIZE) offsets.push(o);
  return offsets;
}

/**
 * `view` is the first and last row index on screen; `changeKey` changes whenever the node's counts do (a
 * refresh then, even after the run ended); `active` keeps a 2 s refresh going.
 */
export function useTaskPages(runId: string, node: string, state: string, view: [number, number], changeKey: string, active: boolean): TaskPages {
  const query = `${runId}|${node}|${state}`;
  const [fetched, setFetched] = useState<Fetched>({ query, pages: new Map(), total: null, error: null });
  const mine = fetched.query === query ? fetched : { query, pages: new Map<number, CachedPage>(), total: null, error: null };
  const cache = useRef(mine.pages);
  cache.current = mine.pages;
  const inFlight = useRef(new Set<string>());

  const fetchPage = useCallback(async (offset: number, etag: string | null) => {
    const key = `${query}|${offset}`;
    if (inFlight.current.has(key)) return;
    inFlight.current.add(key);
    const update = (change: (old: Fetched) => Partial<Fetched>) => setFetched((old) => {
      const base = old.query === query ? old : { query, pages: new Map(), total: null, error: null };
      return { ...base, ...change(base) };
    });
    try {
      const answer = await pollTasks(runId, etag, { node, state: state || undefined, offset, limit: PAGE_SIZE });
      if (answer) {
        update((old) => ({ total: answer.body.total, error: null, pages: new Map(old.pages).set(offset, { items: answer.body.items, etag: answer.etag }) }));
      }
    } catch (failure) {
      update(() => ({ error: failure }));
    } finally {
      inFlight.current.delete(key);
    }
  }, [query, runId, node, state]);

  const [first, last] = view;
  const wanted = pageOffsets(first, last);
  const wantedKey = wanted.join(",");
  const latestWanted = useRef(wanted);
  latestWanted.current = wanted;

  // Fetch the pages in view that are missing (also on a new query: fetchPage changes); forget far ones.
  useEffect(() => {
    const offsets = latestWanted.current;
    for (const offset of offsets) if (!cache.current.has(offset)) void fetchPage(offset, null);
    const [low, high] = [offsets[0] - KEEP_PAGES * PAGE_SIZE, offsets[offsets.length - 1] + KEEP_PAGES * PAGE_SIZE];
    if ([...cache.current.keys()].some((o) => o < low || o > high)) {
      setFetched((old) => ({ ...old, pages: new Map([...old.pages].filter(([o]) => o >= low && o <= high)) }));
    }
  }, [wantedKey, fetchPage]);

  const refreshedAt = useRef(0);
  const refresh = useCallback(async () => {
    refreshedAt.current = Date.now();
    await Promise.all(latestWanted.current.map((offset) => fetchPage(offset, cache.current.get(offset)?.etag ?? null)));
  }, [fetchPage]);

  useEffect(() => { void refresh(); }, [changeKey, refresh]);
  // The timer catches what leaves the counts as they were (a new attempt of a running task); while counts
  // move, the refresh above has just run and the timer skips its turn rather than fetch the page twice.
  usePolling(() => (Date.now() - refreshedAt.current < REFRESH_MS - 500 ? undefined : refresh()), REFRESH_MS, active, query);

  const row = (index: number) => mine.pages.get(Math.floor(index / PAGE_SIZE) * PAGE_SIZE)?.items[index % PAGE_SIZE];
  return { total: mine.total, row, error: mine.error };
}
