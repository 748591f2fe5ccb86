"""attrdistill: attribution-guided knowledge distillation.

A fine-tuned teacher marks the input words that drive its answer (gradient saliency); those words
become rationales that a small student learns to generate next to the label. Start with
`attrdistill run` (see README.md) or the stage functions in `attrdistill.pipeline`.
"""

__version__ = "0.1.0"
