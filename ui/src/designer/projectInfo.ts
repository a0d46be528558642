// An MLproject's entry points as the server reads them, fetched a moment after the URI or version stops
// changing (typing a path should not fire a request per key) and remembered per (uri, version).

import { useEffect, useState } from "react";
import { describeProject } from "../api/endpoints";
import type { ProjectInfo } from "../api/types";

const known = new Map<string, ProjectInfo>();
const DEBOUNCE_MS = 500;

export interface ProjectInfoState { info: ProjectInfo | null; error: unknown; loading: boolean }

export function useProjectInfo(uri: string | undefined, version: string | undefined): ProjectInfoState {
  const key = `${uri ?? ""}\n${version ?? ""}`;
  const [state, setState] = useState<ProjectInfoState & { key: string }>({ key: "", info: null, error: null, loading: false });

  useEffect(() => {
    if (!uri || known.has(key)) return;
    let live = true;
    const timer = setTimeout(() => {
      describeProject(uri, version || undefined).then(
        (info) => {
          known.set(key, info);
          if (live) setState({ key, info, error: null, loading: false });
        },
        (error: unknown) => live && setState({ key, info: null, error, loading: false }),
      );
    }, DEBOUNCE_MS);
    return () => { live = false; clearTimeout(timer); };
  }, [key, uri, version]);

  if (!uri) return { info: null, error: null, loading: false };
  const cached = known.get(key);
  if (cached) return { info: cached, error: null, loading: false };
  return state.key === key ? state : { info: null, error: null, loading: true };
}
