"""LoRA teachers through peft: adapters on a model, trained instead of its weights, then merged back.

    model = with_adapters(model, cfg.teacher.lora)   # a peft model; only the adapters train
    plain = model.merge_and_unload()                  # the model with its adapters folded into its weights

A large teacher's full fine-tune keeps every weight's gradient and two AdamW moments; LoRA keeps them for the
adapters alone. The teacher is saved merged, so attribution, kd's logits and evaluation see a plain model.
"""

from __future__ import annotations

from typing import Any

from attrdistill.config import LoraConfig
from attrdistill.errors import ConfigError
from attrdistill.modeling.features import is_causal


def with_adapters(model: Any, lora: LoraConfig, role: str = "teacher") -> Any:
    """`model` wrapped by peft with LoRA adapters of `lora`; a target module the model lacks is refused."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model
    linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    missing = [t for t in lora.target_modules if t not in linear]
    if missing:
        raise ConfigError(f"{role}.lora.target_modules: {missing[0]!r} is not a linear layer of the {role} (its "
                          f"linear layers: {', '.join(linear)})")
    settings = PeftLoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                              target_modules=list(lora.target_modules) or None,
                              task_type=TaskType.CAUSAL_LM if is_causal(model) else TaskType.SEQ_2_SEQ_LM)
    return get_peft_model(model, settings)
