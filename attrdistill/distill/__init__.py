"""What students learn from and how: train rows (rows.py), the trainer (trainer.py), the teacher's signals
(signals.py: cached logits, outputs), and the losses as pure functions (kd.py, matching.py)."""
