"""Fan-in: reads every partition's predictions and writes report.json and report.md."""

import json

import mlflow
import pandas as pd

from concurrent_mlflow import task

frames = [pd.read_parquet(path) for path in task.inputs("predictions")]
scored = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"anomaly": [], "device": []})
by_device = scored.groupby("device")["anomaly"].mean().sort_values(ascending=False)
report = {
    "files": len(frames),
    "rows": len(scored),
    "anomalies": int(scored["anomaly"].sum()),
    "anomaly_rate": float(scored["anomaly"].mean()) if len(scored) else 0.0,
    "worst_devices": {str(k): round(float(v), 4) for k, v in by_device.head(5).items()},
}
(task.output_dir() / "report.json").write_text(json.dumps(report, indent=2))
lines = [
    "# Sensor demo report",
    "",
    f"- files scored: {report['files']}",
    f"- rows scored: {report['rows']}",
    f"- anomalies: {report['anomalies']} ({report['anomaly_rate']:.2%})",
    "",
    "Worst devices:",
    "",
]
lines += [f"- {device}: {rate:.2%}" for device, rate in report["worst_devices"].items()]
(task.output_dir() / "report.md").write_text("\n".join(lines) + "\n")
mlflow.log_metrics(
    {"rows": report["rows"], "anomalies": report["anomalies"], "anomaly_rate": report["anomaly_rate"]}
)
print("\n".join(lines))
