"""attrdistill: attribution-guided knowledge distillation.

A fine-tuned teacher marks the input words that drive its answer (gradient saliency); those words
become rationales that a small student learns to generate next to the label. Start with
`attrdistill run` (see README.md); the package's folders are its roles (README.md, Layout).
"""

__version__ = "0.1.0"
