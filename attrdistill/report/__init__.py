"""What a run says: metrics.json (metrics.py), report.md and report.html (document.py) with their figures
(plots.py) and word heat-maps (heatmap.py), beside the paper's numbers (paper.py)."""
