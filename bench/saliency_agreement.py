"""Benchmark: does a student look where the teacher looks? Its own saliency against the teacher's word scores.

    python bench/saliency_agreement.py runs/esnli-smollm2-low [--method occlusion] [--split student_train]
    python bench/saliency_agreement.py runs/esnli-smollm2-low --split test --scores runs/esnli-smollm2-low-aligned

For every trained model of RUN (the teacher, then each variant's seeds) it measures, over the examples of
--split that the teacher's --method scored (at most --limit), `matching.saliency_agreement`: KL(teacher's word
scores || the model's own saliency), the same for a uniform saliency, and the teacher's mass on the model's 5
most salient tokens. It prints one row per variant (mean ± std over seeds, the paired gain over `standard` with
its 95% interval) and writes every model's figures to --json (default RUN/saliency_agreement-METHOD-SPLIT.json;
resumed: a model already measured with the same settings is not measured again).

Why: a match term lowers this KL on its student's training rows (student_train, in sample). On rows the student
never saw (test: the teacher's attributions of test examples, here from --scores, a run with the same teacher)
it says whether the student learned to look where the teacher looks, or fitted its 300 rows; set beside the
accuracy gains it separates "the signal did not transfer" from "it transferred and did not help".
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from attrdistill.config import load_config
from attrdistill.distill.matching import saliency_agreement
from attrdistill.distill.rows import guide_scores, student_pool, train_rows
from attrdistill.distill.trainer import collate_train, features
from attrdistill.evaluate.analysis import paired_gain
from attrdistill.modeling.features import is_causal
from attrdistill.modeling.models import load_trained
from attrdistill.pipeline.layout import TEACHER, TRAIN, Layout, load_split, models
from attrdistill.pipeline.runner import done_record
from attrdistill.registry.variants import STANDARD


def same_teacher(run: Path, other: Path) -> None:
    """Word scores from another run are this run's teacher's only where that run trained the same teacher."""
    fp = [done_record(Layout(r).unit(TEACHER)).get("fingerprint") for r in (run, other)]
    if fp[0] != fp[1]:
        raise SystemExit(f"--scores {other}: its teacher is not {run}'s (fingerprints {fp[1]} and {fp[0]})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--method", default="occlusion", help="the teacher's attribution method compared with")
    ap.add_argument("--split", default=TRAIN, choices=[TRAIN, "test"])
    ap.add_argument("--scores", type=Path, help="the run whose attributions of --split to read (default RUN)")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = load_config(args.run / "config.yaml")
    source = args.scores or args.run
    if source != args.run:
        same_teacher(args.run, source)
    examples = student_pool(args.run, cfg) if args.split == TRAIN else load_split(args.run, args.split)
    scores = guide_scores(source, cfg, args.method, examples, args.split)
    examples = [ex for ex in examples if ex.id in scores][:args.limit]
    if not examples:
        raise SystemExit(f"{source}: no {args.method} attributions of {args.split} examples of this run")
    rows = train_rows(examples, cfg, term=("match", scores))
    out = args.json or args.run / f"saliency_agreement-{args.method}-{args.split}.json"
    settings = {"method": args.method, "split": args.split, "scores": str(source), "n": len(examples)}
    done = json.loads(out.read_text()) if out.is_file() else {}
    if done.get("settings") != settings:
        done = {"settings": settings, "models": {}}
    lay = Layout(args.run)
    for name, (key, variant) in models(cfg).items():
        if name in done["models"] or not (lay.unit(key) / "DONE.json").is_file():   # trained and kept
            continue
        role = cfg.student if variant else cfg.teacher
        model, tok = load_trained(lay.model(key), role.dtype, scoring=True)
        feats = features(tok, rows, role, causal=is_causal(model))
        batches = (collate_train(feats[i:i + args.batch], tok.pad_token_id) for i in range(0, len(feats), args.batch))
        done["models"][name] = saliency_agreement(model, batches)
        print(f"{name}: {done['models'][name]}", flush=True)
        out.write_text(json.dumps(done, indent=1))
    report(done, cfg.distill.seeds)


def report(done: dict, seeds: list[int]) -> None:
    """One row per variant: mean ± std over seeds, and the paired gain over standard where both have every seed."""
    s, got = done["settings"], done["models"]
    reference = next(iter(got.values()))   # the uniform view's figures depend on the examples alone
    print(f"\n{s['method']} scores of {s['n']} {s['split']} examples (from {s['scores']}): KL(teacher || model's "
          f"saliency) in nats (lower: closer; a uniform saliency scores {reference['kl_uniform']:.3f}) and the "
          f"teacher's mass on the model's 5 most salient tokens (higher: closer; 5 tokens at random hold "
          f"{reference['mass_uniform']:.3f})")
    print("| model | KL | mass@5 | KL vs standard [95% CI] |\n|---|---|---|---|")
    variants = dict.fromkeys(n.rpartition("-seed")[0] for n in got if "-seed" in n)
    base = [got.get(f"{STANDARD}-seed{k}", {}).get("kl") for k in seeds]
    for v in ["teacher", *variants]:
        per = [got[n] for n in ([v] if v == "teacher" else [f"{v}-seed{k}" for k in seeds]) if n in got]
        if not per:
            continue
        kl = [p["kl"] for p in per]
        gain = ""
        if v not in ("teacher", STANDARD) and len(kl) == len(seeds) and None not in base:
            g, lo, hi = paired_gain(kl, base)
            gain = f"{g:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        print(f"| {v} ({len(per)}) | {_mean_std(kl)} | {_mean_std([p['mass_at_top'] for p in per])} | {gain} |")


def _mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


if __name__ == "__main__":
    main()
