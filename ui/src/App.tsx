// The shell: top navigation and one route per page. The router's basename is the mount point the server
// wrote into <base href> (`/` for `concurrent server`, `/concurrent/` inside `mlflow server`).

import { useEffect, useState } from "react";
import { BrowserRouter, NavLink, Route, Routes } from "react-router-dom";
import { ApiError, setToken } from "./api/client";
import { whoami } from "./api/endpoints";
import { SignIn } from "./components/SignIn";
import type { WhoAmI } from "./api/types";
import { DesignerPage } from "./designer/DesignerPage";
import { RunListPage } from "./monitor/RunListPage";
import { RunMonitorPage } from "./monitor/RunMonitorPage";
import { ClustersPage } from "./pages/ClustersPage";
import { DagListPage } from "./pages/DagListPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { SchedulesPage } from "./pages/SchedulesPage";

export const BASENAME = new URL(document.baseURI).pathname.replace(/\/$/, "") || "/";

export function App() {
  const [who, setWho] = useState<WhoAmI | null>(null);
  const [signIn, setSignIn] = useState(false);
  useEffect(() => {
    whoami().then(setWho, (error) => setSignIn(error instanceof ApiError && error.status === 401));
  }, []);
  if (signIn && !who) return <SignIn onSignedIn={setWho} />;
  return (
    <BrowserRouter basename={BASENAME}>
      <div className="app">
        <header className="topbar">
          <NavLink to="/" className="brand">Concurrent for MLflow</NavLink>
          <nav aria-label="Main">
            <NavLink to="/" end>DAGs</NavLink>
            <NavLink to="/runs">Runs</NavLink>
            <NavLink to="/schedules">Schedules</NavLink>
            <NavLink to="/clusters">Clusters</NavLink>
          </nav>
          {who && <span className="who">{who.user}{who.admin ? " (admin)" : ""}</span>}
          {who?.auth && <button className="signout" onClick={() => { setToken(null); location.reload(); }}>Sign out</button>}
        </header>
        <main>
          <Routes>
            <Route path="/" element={<DagListPage />} />
            <Route path="/dags/new" element={<DesignerPage />} />
            <Route path="/dags/:name" element={<DesignerPage />} />
            <Route path="/runs" element={<RunListPage />} />
            <Route path="/runs/:id" element={<RunMonitorPage />} />
            <Route path="/schedules" element={<SchedulesPage />} />
            <Route path="/clusters" element={<ClustersPage />} />
            <Route path="*" element={<NotFoundPage />} />
          </Routes>
        </main>
      </div>
    </BrowserRouter>
  );
}
