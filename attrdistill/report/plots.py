"""The report's figures, drawn with matplotlib's Agg canvas into PNG files.

    plots.accuracy({"teacher": (0.9, 0.0, 0.81), "saliency": (0.55, 0.12, None)}, Path("acc.png"))
    plots.curves({"teacher": [history], "saliency": [seed0_history, seed1_history]}, Path("curves.png"))
    plots.k_sweep([{"k": 1, "accuracy": 0.5, "std": 0.0}, ...], "saliency", Path("k.png"))
    plots.faithfulness({"saliency": {"comprehensiveness": 0.4, "sufficiency": 0.1}}, Path("faith.png"))

Each function returns the path it wrote, or None when there is nothing to draw. matplotlib is
imported inside the functions (it is slow to import) and no pyplot state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

WIDTH = 10.0   # inches at 100 dpi: the HTML page's width


def _figure(height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _colours(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    others = [n for n in names if n != "teacher"]
    return {"teacher": "black", **{n: palette[i % len(palette)] for i, n in enumerate(others)}}


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def accuracy(models: Mapping[str, tuple[float, float | None, float | None]], path: Path) -> Path | None:
    """Horizontal bars of test accuracy (%) per model, ± std over seeds; the paper's as diamonds."""
    if not models:
        return None
    names = list(models)
    fig, (ax,) = _figure(0.9 + 0.45 * len(names))
    ys = range(len(names))[::-1]
    colours = _colours(names)
    means = [100 * _num(models[n][0]) for n in names]
    stds = [100 * _num(models[n][1]) if models[n][1] else 0.0 for n in names]
    ax.barh(ys, means, xerr=stds, color=[colours[n] for n in names], alpha=0.8, capsize=3)
    for y, mean in zip(ys, means):
        if not math.isnan(mean):
            ax.text(1, y, f"{mean:.1f}", va="center", ha="left", fontsize=9, color="white", fontweight="bold")
    paper = [(y, 100 * models[n][2]) for y, n in zip(ys, names) if models[n][2] is not None]
    if paper:
        ax.scatter([p for _, p in paper], [y for y, _ in paper], marker="D", color="white", edgecolor="black",
                   zorder=3, label="paper")
        ax.legend(loc="lower right")
    ax.set_yticks(list(ys), names)
    ax.set_xlim(0, 105)
    ax.set_xlabel("test accuracy (%)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _points(history: Sequence[Mapping[str, Any]], key: str, scale: float = 1.0) -> tuple[list, list]:
    rows = [r for r in history if r.get(key) is not None and "step" in r]
    return [r["step"] for r in rows], [scale * r[key] for r in rows]


def curves(histories: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], path: Path) -> Path | None:
    """Training loss and validation accuracy against step; one colour per model, one line per seed."""
    panels = {key: {name: [_points(h, key, scale) for h in runs] for name, runs in histories.items()}
              for key, scale in (("loss", 1.0), ("eval_accuracy", 100.0))}
    if not any(xs for lines in (*panels["loss"].values(), *panels["eval_accuracy"].values()) for xs, _ in lines):
        return None
    fig, axes = _figure(3.8, ncols=2)
    colours = _colours(list(histories))
    for ax, (key, by_name) in zip(axes, panels.items()):
        for name, lines in by_name.items():
            for i, (xs, ys) in enumerate(lines):
                if xs:
                    ax.plot(xs, ys, color=colours[name], alpha=0.85, lw=1.8 if name == "teacher" else 1.1,
                            marker="o" if len(xs) < 12 else None, ms=3, label=name if i == 0 else None)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    loss_ax, acc_ax = axes
    if all(y > 0 for lines in panels["loss"].values() for _, ys in lines for y in ys):
        loss_ax.set_yscale("log")
    loss_ax.set_title("training loss")
    acc_ax.set_title("validation accuracy (%)")
    labelled = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(labelled.values()), list(labelled), loc="outside right upper", fontsize=9)
    return _save(fig, path)


def k_sweep(points: Sequence[Mapping[str, Any]], method: str, path: Path) -> Path | None:
    """Student accuracy (%) against the number of rationale words k, ± std over seeds."""
    points = sorted((p for p in points if p.get("accuracy") is not None), key=lambda p: p["k"])
    if not points:
        return None
    fig, (ax,) = _figure(3.4)
    ks = [p["k"] for p in points]
    ax.errorbar(ks, [100 * p["accuracy"] for p in points], yerr=[100 * (p.get("std") or 0.0) for p in points],
                marker="o", capsize=3, color="tab:red", label=f"{method} student")
    ax.set_xticks(ks)
    ax.set_xlabel("k (rationale words)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def faithfulness(by_method: Mapping[str, Mapping[str, Any]], path: Path) -> Path | None:
    """Bars of comprehensiveness (higher: the rationale matters) and sufficiency (lower: it suffices)."""
    names = [m for m, v in by_method.items()
             if v and (v.get("comprehensiveness") is not None or v.get("sufficiency") is not None)]
    if not names:
        return None
    fig, (ax,) = _figure(3.4)
    width = 0.38
    for offset, key, colour in ((-width / 2, "comprehensiveness", "tab:blue"),
                                (width / 2, "sufficiency", "tab:orange")):
        ax.bar([i + offset for i in range(len(names))], [_num(by_method[m].get(key)) for m in names], width,
               label=key, color=colour)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("change in p(target)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)
