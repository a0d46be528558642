"""PNG line plots for the sections (matplotlib, from the `bench` dependency group).

matplotlib is imported here only, when a plot is drawn, so a section's figures never wait on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def lines(
    path: Path,
    title: str,
    x_label: str,
    x: Sequence[float],
    panels: Mapping[str, Mapping[str, Sequence[float]]],
) -> Path:
    """One PNG of side-by-side panels, each `y label -> {series name -> y per x}`, on a log x axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (y_label, series) in zip(axes[0], panels.items(), strict=True):
        for name, ys in series.items():
            axis.plot(x, ys, marker="o", label=name)
        axis.set_xscale("log")
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
