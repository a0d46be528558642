// Put into MLflow's own UI by `mlflow server --app-name concurrent` (mlflow_plugin/app.py):
// 1. a "DAGs" entry in MLflow's side navigation, next to Experiments and Models, opening our UI;
// 2. on the page of a run that a DAG run made (parent or partition), a link back to that DAG run.
// MLflow's UI is a prebuilt React app, so both are added to its DOM and re-added when React redraws it.
(() => {
  "use strict";
  const MOUNT = "/concurrent/";
  const ICON =
    '<svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" ' +
    'stroke-width="1.5"><rect x="1" y="2" width="5" height="4" rx="1"/><rect x="10" y="2" width="5" height="4" ' +
    'rx="1"/><rect x="5.5" y="10" width="5" height="4" rx="1"/><path d="M6 4h4M3.5 6l3.5 4M12.5 6L9 10"/></svg>';

  function addNavEntry() {
    if (document.querySelector("[data-concurrent-nav]")) return;
    const after = document.querySelector('li > a[href="#/models"]') || document.querySelector('li > a[href="#/experiments"]');
    if (!after) return;
    // Copy an entry that is not the current page, so the copy does not look selected.
    const current = location.hash.split("?")[0];
    const links = [...after.closest("ul").querySelectorAll("li > a[href^='#/']")];
    const template = links.find((a) => !current.startsWith(a.getAttribute("href")) && !a.getAttribute("aria-current")) || after;
    const item = template.parentElement.cloneNode(true);
    item.setAttribute("data-concurrent-nav", "");
    const link = item.querySelector("a");
    link.setAttribute("href", MOUNT);
    link.removeAttribute("aria-current");
    const label = template.textContent.trim().split("\n")[0];
    for (const node of walkText(item)) {
      if (node.nodeValue.trim() === label) node.nodeValue = "DAGs";
      else if (node.nodeValue.trim()) node.nodeValue = "";  // badges such as "Beta"
    }
    const icon = item.querySelector("svg");
    if (icon) icon.outerHTML = ICON;
    after.parentElement.after(item);
  }

  function* walkText(root) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) yield walker.currentNode;
  }

  // The run page being handled: its MLflow run id and the link made for it (null while its tags are read, and
  // for runs no DAG run made). One request per run page, however often MLflow redraws, and never two links.
  let current = null;
  async function addRunLink() {
    const match = location.hash.match(/^#\/experiments\/[^/]+\/runs\/([0-9a-f]+)/);
    const runId = match ? match[1] : null;
    if (current && current.runId === runId) {
      if (current.link && !current.link.isConnected) document.body.append(current.link);
      return;
    }
    current?.link?.remove();
    current = runId ? { runId, link: null } : null;
    if (!current) return;
    const mine = current;
    const response = await fetch(`ajax-api/2.0/mlflow/runs/get?run_id=${runId}`);
    if (!response.ok || current !== mine) return;
    const tags = Object.fromEntries(((await response.json()).run?.data?.tags ?? []).map((t) => [t.key, t.value]));
    const dagRun = tags["concurrent.run_id"];
    if (!dagRun || current !== mine) return;
    const query = tags["concurrent.node"] ? `?node=${encodeURIComponent(tags["concurrent.node"])}` : "";
    const link = document.createElement("a");
    link.setAttribute("data-concurrent-run-link", "");
    link.href = `${MOUNT}runs/${dagRun}${query}`;
    const what = tags["concurrent.node"] ? ` (${tags["concurrent.node"]}[${tags["concurrent.partition"]}])` : "";
    const dag = tags["concurrent.dag"] ? ` of ${tags["concurrent.dag"]}` : "";  // only parent runs carry it
    link.textContent = `Open DAG run ${dagRun.slice(0, 8)}${dag}${what} in Concurrent`;
    link.style.cssText =
      "position:fixed;top:12px;right:16px;z-index:1000;background:#0b5cad;color:#fff;padding:6px 12px;" +
      "border-radius:6px;font:600 13px system-ui,sans-serif;text-decoration:none;box-shadow:0 2px 6px #0003";
    mine.link = link;
    document.body.append(link);
  }

  let scheduled = false;
  function refresh() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      addNavEntry();
      addRunLink().catch(() => undefined);
    });
  }
  new MutationObserver(refresh).observe(document.body, { childList: true, subtree: true });
  window.addEventListener("hashchange", refresh);
  refresh();
})();
