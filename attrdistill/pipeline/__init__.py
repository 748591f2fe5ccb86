"""Running a plan: the units of a run, the work of each, and the bookkeeping that makes them resumable.

    plan.py      every unit of a run: its key, stage, deps and config slice (torch-free)
    stages.py    the work of each unit (loads models: imported only when a unit runs)
    runner.py    fingerprints, skip / resume / recompute, barriers, the verb table
    layout.py    every path of a run directory and every unit key
    records.py   the typed rows that cross units
    shards.py    the sharded cache of attribution scores and kd logits
    store.py     atomic writes, manifests, fingerprints
    distributed.py  which process this is under `accelerate launch`
"""
