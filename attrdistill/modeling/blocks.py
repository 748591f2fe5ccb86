"""How many transformer blocks a model has, known without building it or loading its weights (torch-free).

    Blocks(2, encoder_decoder=True, source="teacher.num_layers")   # a from-scratch T5: 2 blocks in each stack
    read_config_json(Path("models/smollm2/config.json"))           # Blocks(30, False, '...: num_hidden_layers')
    read_gguf(Path("models/SmolLM2-135M-Instruct.Q4_1.gguf"))      # from the header's <arch>.block_count
    blocks.kept_problem([0, 99])                                   # why keep_blocks cannot keep these, or None

The config checks (`config.validate` from the size fields, `config.check_environment` from a pretrained model's
files) refuse a `keep_blocks` that names a block the model lacks before any work; `pruning.keep_blocks` gives
the same refusal when it cuts a loaded model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Blocks:
    count: int              # blocks in every stack (a T5's encoder and decoder: the fewer of the two)
    encoder_decoder: bool   # a T5: block 0 holds the relative position bias that every block uses
    source: str = ""        # where the count comes from, for messages: a field, or a file and its key

    def kept_problem(self, kept: list[int]) -> str | None:
        """Why `keep_blocks: kept` cannot cut these blocks, or None."""
        if not kept or kept != sorted(set(kept)) or kept[0] < 0 or kept[-1] >= self.count:
            return f"expected increasing block indices in 0..{self.count - 1}, got {kept}"
        if self.encoder_decoder and kept[0] != 0:
            return f"a T5 must keep block 0 (its relative position bias), got {kept}"
        return None

    def pruned(self, keep_blocks: list[int], keep_every: int, role: str) -> Blocks:
        """The blocks left once `role`'s keep_blocks / keep_every (or keep_by: influence, as many) has cut them."""
        if keep_blocks:
            return Blocks(len(keep_blocks), self.encoder_decoder, f"{role}.keep_blocks")
        if keep_every > 1:
            return Blocks(len(range(0, self.count, keep_every)), self.encoder_decoder,
                          f"{self.count} of {self.source}, cut by {role}.keep_every {keep_every}")
        return self


def read_config_json(path: Path) -> Blocks | None:
    """The blocks a pretrained model's config.json declares: a T5's num_layers (and num_decoder_layers), a
    decoder-only model's num_hidden_layers (num_layers, n_layer); None where the file or the field is missing."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None

    def count(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    if raw.get("is_encoder_decoder"):
        encoder, decoder = count("num_layers"), count("num_decoder_layers")
        if encoder is None:
            return None   # not T5-style (BART: encoder_layers): pruning refuses it by name
        keys = "num_layers" + (" / num_decoder_layers" if decoder not in (None, encoder) else "")
        return Blocks(min(encoder, decoder or encoder), True, f"{path}: {keys}")
    key = next((k for k in ("num_hidden_layers", "num_layers", "n_layer") if count(k)), None)
    return Blocks(count(key), False, f"{path}: {key}") if key else None   # type: ignore[arg-type]


def read_gguf(path: Path) -> Blocks | None:
    """The blocks a GGUF file's header declares (`<general.architecture>.block_count`); the tensors are mapped,
    not read. None without the gguf package or where the header cannot be read (the model loader says why)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    try:
        reader = GGUFReader(path)
        arch = reader.get_field("general.architecture").contents()
        key = f"{arch}.block_count"
        count = reader.get_field(key).contents()
    except (OSError, ValueError, LookupError, AttributeError):   # a damaged or foreign file, a missing key
        return None
    return Blocks(int(count), False, f"{path}: {key}") if isinstance(count, int) and count > 0 else None
