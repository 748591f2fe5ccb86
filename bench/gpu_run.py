"""Helpers of bench/gpu.sh (see there); not meant to be run alone.

    python bench/gpu_run.py wheels WHEELHOUSE [--absent NAME ...]    # the wheels this Python needs for datasets
    python bench/gpu_run.py attribution SHARED -- ARGS ...           # bench/attribution.py on data under SHARED
    python bench/gpu_run.py collect OUT.json WORK_DIR                # the one JSON of a gpu.sh run
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TINY = dict(d_model=64, d_ff=256, num_layers=2, num_heads=4)   # --smoke's model shape (CPU)


def wheels(folder: Path, absent: list[str]) -> int:
    """Print the wheels of `folder` to install for `datasets`: datasets itself unless installed, then, following
    requirements from what is chosen, each package that is missing or of a version the chooser rejects. Exit 1
    naming a requirement that neither the installed packages nor the wheelhouse meet. `absent`: treat these
    as not installed (the smoke test's stand-in for the GPU image, which lacks datasets, dill and multiprocess)."""
    from packaging.requirements import Requirement
    from packaging.tags import sys_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename

    ok = set(sys_tags())   # the wheelhouse holds multiprocess for two Pythons: keep this one's
    have = {canonicalize_name(parse_wheel_filename(p.name)[0]): p for p in sorted(folder.glob("*.whl"))
            if ok & parse_wheel_filename(p.name)[3]}
    gone = {canonicalize_name(n) for n in absent}

    def installed(name: str) -> str | None:
        try:
            return None if canonicalize_name(name) in gone else version(name)
        except PackageNotFoundError:
            return None

    def requires(wheel: Path) -> list[Requirement]:
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            lines = z.read(meta).decode().splitlines()
        reqs = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
        return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]

    chosen: dict[str, Path] = {}
    todo = [] if installed("datasets") else [Requirement("datasets")]
    problems = []
    while todo:
        req = todo.pop(0)
        name = canonicalize_name(req.name)
        current = (str(parse_wheel_filename(chosen[name].name)[1]) if name in chosen else installed(req.name))
        if current is not None and req.specifier.contains(current, prereleases=True):
            continue
        wheel = have.get(name)
        if name in chosen or wheel is None or not req.specifier.contains(parse_wheel_filename(wheel.name)[1],
                                                                         prereleases=True):
            problems.append(f"{req} (installed: {current}; wheelhouse: {wheel.name if wheel else 'none'})")
            continue
        chosen[name] = wheel
        todo += requires(wheel)
    for problem in problems:
        print(f"wheels: unmet requirement {problem}", file=sys.stderr)
    print(" ".join(str(p) for p in chosen.values()))
    return 1 if problems else 0


def attribution(shared: Path, argv: list[str]) -> None:
    """bench/attribution.py with its data and tokenizer read from `shared` (the device machine has no ../shared)
    and a `tiny` --size for the smoke test; argv are its own arguments."""
    spec = importlib.util.spec_from_file_location("bench_attribution", HERE / "attribution.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    mod.DATA = shared / "data/dsbs"
    mod.TOKENIZER = str(shared / "tokenizers/t5")
    mod.SIZES["tiny"] = TINY
    sys.argv = [str(HERE / "attribution.py"), *argv]
    mod.main()


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _smi(path: Path) -> dict[str, Any] | None:
    """Peak memory and utilisation of nvidia-smi's samples during the paper-cell run (lines: util %, MiB)."""
    rows = []
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            rows.append([float(x) for x in line.split(",")])
        except ValueError:
            pass
    if not rows:
        return None
    util = [r[0] for r in rows]
    return {"samples_1s": len(rows), "max_memory_used_mib": max(r[1] for r in rows),
            "mean_utilization_pct": sum(util) / len(util),
            "share_of_samples_busy": sum(u > 0 for u in util) / len(util)}


def collect(out: Path, work: Path) -> None:
    """The one JSON of a gpu.sh run: machine and versions, each part's exit status and seconds, the attribution
    benchmark's results, and the paper-cell run's metrics, per-unit seconds and evidence of the CUDA paths."""
    import torch
    import yaml

    def v(p: str) -> str | None:
        try:
            return version(p)
        except PackageNotFoundError:
            return None

    cuda = torch.cuda.is_available()
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True) if cuda else None
    parts = {}
    for line in (work / "parts.tsv").read_text().splitlines():
        name, rc, seconds = line.split("\t")
        parts[name] = {"exit_status": int(rc), "seconds": float(seconds), "ok": rc == "0"}
        log = work / f"{name}.log"
        if rc != "0" and log.is_file():   # why, without the log (124: out of its time budget)
            parts[name]["log_tail"] = log.read_text(errors="replace").splitlines()[-30:]
    run = work / "run"
    metrics = _json(run / "metrics.json")
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    units = {str(p.parent.relative_to(run)): (_json(p) or {}).get("seconds") for p in sorted(run.rglob("DONE.json"))}
    env = _json(run / "environment.json") or {}
    attr = _json(work / "attribution.json") or {}
    metrics = metrics or {}
    summary = {
        "attribution": {name: {"ours_examples_per_s": r["examples_per_s"]["ours"],
                               "loop_examples_per_s": r["examples_per_s"]["loop"],
                               "ours_over_loop": r["speedup_vs_loop"],
                               "peak_memory_gib": r.get("peak_memory_gib_ours"),
                               "top5_agreement_vs_loop": r["top5_agreement_vs_loop"]} for name, r in attr.items()},
        "paper_cell": {"teacher_accuracy": metrics.get("teacher", {}).get("accuracy"),
                       "student_accuracy": {k: s.get("accuracy") for k, s in metrics.get("students", {}).items()}},
    }
    result = {
        "mode": (work / "mode").read_text().strip(),
        "summary": summary,
        "machine": {"gpu": torch.cuda.get_device_name(0) if cuda else None,
                    "nvidia_smi": smi.stdout.strip() if smi and smi.returncode == 0 else None,
                    "bf16_supported": cuda and torch.cuda.is_bf16_supported(), "cuda": torch.version.cuda,
                    "python": platform.python_version(), "cpus": os.cpu_count()},
        "versions": {p: v(p) for p in ("torch", "transformers", "accelerate", "datasets", "pyarrow", "tokenizers",
                                       "numpy", "attrdistill")},
        "parts": parts,
        "total_seconds": sum(p["seconds"] for p in parts.values()),
        "attribution_benchmark": attr or None,
        "paper_cell": {
            "device": env.get("device"),
            "shapes": {r: {k: config.get(r, {}).get(k) for k in ("d_model", "d_ff", "num_layers", "num_heads",
                                                                 "dtype")} for r in ("teacher", "student")},
            # Trainer gets bf16=True exactly when dtype is bfloat16 and CUDA is there (attrdistill/training.py);
            # attribution and evaluation load the trained models in that dtype (models.load_trained).
            "bf16_training": cuda and env.get("device") not in (None, "cpu")
            and config.get("teacher", {}).get("dtype") == "bfloat16",
            "unit_seconds": units,
            "stage_seconds": metrics.get("timing"),
            "gpu_during_run": _smi(work / "smi.csv"),
            "metrics": metrics or None,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: result[k] for k in ("mode", "machine", "parts", "total_seconds", "summary")}, indent=1,
                     default=str))


def main() -> int:
    verb, *rest = sys.argv[1:]
    if verb == "wheels":
        absent = rest[rest.index("--absent") + 1:] if "--absent" in rest else []
        return wheels(Path(rest[0]), absent)
    if verb == "attribution":
        attribution(Path(rest[0]), rest[2:] if rest[1:2] == ["--"] else rest[1:])
        return 0
    if verb == "collect":
        collect(Path(rest[0]), Path(rest[1]))
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
