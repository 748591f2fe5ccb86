"""Run configuration: typed dataclasses, one documented default per field, YAML in and out.

    cfg = load_config("my.yaml", overrides=["distill.seeds=[0,1,2]", "attribution.k=3"])
    print(dump_config(cfg))          # the full resolved config, with each field's doc as a comment

The defaults written here are the only ones: `configs/default.yaml` is `dump_config(RunConfig())`
and a test keeps the two equal. Choices and ranges are the fields' types (`Literal`, `Annotated` bounds, and
`Choices` read from a registry each time: the attribution methods of `attrdistill.registry.methods`), checked
on load with the field named; `check_environment` looks for files, cached models and packages when a run starts,
before any work.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.util
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import yaml

from attrdistill.errors import ConfigError
from attrdistill.modeling.blocks import Blocks, read_config_json, read_gguf
from attrdistill.registry.methods import REGISTRY, aligned_names, method_names, methods_doc
from attrdistill.registry.variants import data_reads, parse_variant, variants_doc
from attrdistill.report.paper import SETTINGS


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with its documentation; lists and dataclasses get a default factory."""
    if isinstance(default, list) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda d=default: _copy(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)   # nested sections must never be shared between configs


@dataclass(frozen=True)
class Bound:
    """A field's range, checked on load: value > low (strict) or value >= low."""
    low: float
    strict: bool

    def holds(self, value: float) -> bool:
        return value > self.low if self.strict else value >= self.low

    def __str__(self) -> str:
        return f"a value {'>' if self.strict else '>='} {self.low:g}"


@dataclass(frozen=True)
class Choices:
    """A field's choices read from a registry each time a value is checked, so that an entry added there (or in
    a test) is a valid value at once; a Literal's choices are fixed when this module loads."""
    names: Callable[[], tuple[str, ...]]

    def holds(self, value: Any) -> bool:
        return value in self.names()

    def __str__(self) -> str:
        return f"one of {', '.join(self.names())}"


PosInt = Annotated[int, Bound(0, strict=True)]
NonNegInt = Annotated[int, Bound(0, strict=False)]
PosFloat = Annotated[float, Bound(0, strict=True)]
NonNegFloat = Annotated[float, Bound(0, strict=False)]
# Choices are the types of their fields (checked on load); these are also read elsewhere.
Source = Literal["builtin", "cqa", "svamp", "anli1", "esnli", "files"]
Method = Annotated[str, Choices(method_names)]   # the attribution methods' registry (attrdistill.registry.methods)
Quantity = Literal["logit", "log_prob", "margin"]
Dtype = Literal["float32", "bfloat16", "float16", "auto"]
# Training examples that rank the blocks for keep_by: influence (a forward pass of 64 costs seconds on a CPU).
INFLUENCE_EXAMPLES = 64
QUANTITIES: tuple[str, ...] = typing.get_args(Quantity)


def _either(names: tuple[str, ...]) -> str:
    """'a, b or c'."""
    return " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


@dataclass
class DataConfig:
    source: Source = _f("builtin", "Task: 'builtin' (the synthetic decisive-words task shipped with the package), a "
                                   "Distilling Step-by-Step dataset read from data.path (cqa, svamp, anli1, esnli), "
                                   "or 'files' (your own .jsonl/.csv, see train_file).")
    path: str = _f("../shared/data/dsbs", "DSbS release folder (holds cqa/, svamp/, anli1/, esnli/).")
    loader: Literal["dsbs", "hub", "esnli_csv"] = _f(
        "dsbs", "Where a paper dataset comes from: dsbs (the release at data.path), hub (the `datasets` library by "
        "hub name, see data.hub_id) or esnli_csv (esnli only: the e-SNLI CSV files with human highlights, in the "
        "folder data.path).")
    hub_id: str | None = _f(None, "loader hub: a hub id, or a DatasetDict.save_to_disk folder, instead of the default "
                                  "(cos_e v1.11, ChilleD/SVAMP, facebook/anli, esnli).")
    nli_format: Literal["eos", "text"] = _f("eos", "NLI input: 'eos' (premise</s>hypothesis, as DSbS) or 'text' "
                                                   "(Premise: ... Hypothesis: ...).")
    train_split: Literal["train", "valid"] = _f(
        "train", "Paper datasets: the split of the release to train on. 'valid' trains on the validation split with "
        "10% of it held out (seed data.seed) as validation, for releases without train (e-SNLI and ANLI R1 in "
        "DSbS's); test stays test.")
    limit: NonNegInt = _f(0, "Real data: keep only the first N examples of every split (0 = all); for quick runs.")
    eval_limit: NonNegInt = _f(0, "Real data: keep only the first N validation and test examples (0 = as data.limit).")
    train_file: str | None = _f(None, "source 'files': your train .jsonl/.csv (the teacher learns from it, and the "
                                      "students unless student_train_file is given).")
    valid_file: str | None = _f(None, "source 'files': validation file; null holds out 10% of train (seed data.seed).")
    transfer_file: str | None = _f(None, "source 'files': unlabelled inputs (.jsonl/.csv with the input column, or "
                                         "the template's; no label column) that the teacher labels with its greedy "
                                         "output; the students learn from them beside the labelled examples.")
    student_train_file: str | None = _f(None, "source 'files': the students' own labelled examples, apart from the "
                                              "teacher's train_file (null: the students learn from train_file too). "
                                              "Same columns as train_file.")
    test_file: str | None = _f(None, "source 'files': test file.")
    input_field: str = _f("input", "source 'files': the column holding the input text.")
    input_template: str | None = _f(
        None, "source 'files': build each input from named columns instead, e.g. 'Premise: {premise}\\nHypothesis: "
              "{hypothesis}' ({{ and }} for literal braces). The filled columns are the example's content, the rest is "
              "format: never a rationale word. null: the input_field column as it is.")
    label_field: str = _f("label", "source 'files': the column holding the label.")
    rationale_field: str | None = _f(None, "source 'files': optional column of given rationales (the dsbs variant).")
    decisive_field: str | None = _f(None, "source 'files': optional column of the words that decide each label, in "
                                          "label order (the oracle variant, recall@k): a list of word indices "
                                          "(0-based, attrdistill's word split) or of the words themselves, as JSON (a "
                                          "CSV cell may also hold 'w1, w2').")
    human_field: str | None = _f(None, "source 'files': optional column of human-highlighted words (the human "
                                       "variant, agreement with human highlights), given as decisive_field.")
    n_teacher_train: PosInt = _f(6000, "Builtin task: examples the teacher is fine-tuned on.")
    n_student_train: PosInt = _f(200, "Builtin task: examples the students learn from (the low-data regime: at 300 a "
                                      "label-only student trained to a plateau already reaches ~97% on validation).")
    n_valid: PosInt = _f(300, "Builtin task: validation examples (checkpoint selection).")
    n_test: PosInt = _f(500, "Builtin task: test examples (reported accuracy).")
    seed: int = _f(0, "Seed of the data generator (and of any data shuffling).")
    predict_prefix: str = _f("predict: ", "Prefix of the label task; rationale words never come from it.")
    explain_prefix: str = _f("explain: ", "Prefix of the rationale task of two-task students.")


@dataclass
class LoraConfig:
    rank: NonNegInt = _f(0, "teacher: LoRA adapters of this rank are trained instead of every weight (0 = off: a "
                            "full fine-tune); they are merged into the weights before attribution and kd's logits, and "
                            "the teacher is saved merged. Needs less memory for a large teacher.")
    alpha: PosFloat = _f(16.0, "LoRA scaling alpha (the update is scaled by alpha / rank).")
    dropout: NonNegFloat = _f(0.05, "Dropout on the adapters' input.")
    target_modules: list[str] = _f([], "Names of the modules to adapt (e.g. [q_proj, v_proj]); [] = peft's default "
                                       "for the architecture (T5: q, v; Llama: q_proj, v_proj).")


@dataclass
class TrainConfig:
    learning_rate: PosFloat = _f(1e-3, "Peak learning rate of AdamW (linear decay).")
    batch_size: PosInt = _f(32, "Examples per optimizer step (per device).")
    max_steps: NonNegInt = _f(1000, "Optimizer steps; 0 uses the loaded model as it is (e.g. an already fine-tuned "
                                    "teacher).")
    eval_steps: PosInt = _f(250, "Evaluate validation accuracy and save a checkpoint every this many steps.")
    warmup_steps: NonNegInt = _f(0, "Linear warm-up steps.")
    weight_decay: NonNegFloat = _f(0.0, "AdamW weight decay.")
    seed: int = _f(0, "Seed of model initialisation and data order.")
    patience: NonNegInt = _f(0, "Stop when validation accuracy has not improved for this many evaluations (the best "
                                "checkpoint is kept); 0 trains all max_steps.")


@dataclass
class ModelConfig:
    model: str | None = _f(None, "Hub id or local directory of a pretrained model (seq2seq or causal LM); null (and "
                                 "no gguf_file) builds one of `architecture` from the size fields below.")
    tokenizer: str | None = _f(None, "Hub id or directory of the tokenizer; null uses the model's, or for a "
                                     "from-scratch model the word-level tokenizer built from the task.")
    architecture: Literal["t5", "llama"] = _f("t5", "From-scratch family: t5 (encoder-decoder) or llama "
                                                    "(decoder-only); a pretrained model brings its own (seq2seq or "
                                                    "causal LM, detected from its config).")
    gguf_file: str | None = _f(None, "A .gguf file of a causal LM (a path, or a file name inside `model`), loaded "
                                     "dequantized through transformers (needs the gguf package).")
    finetune: bool = _f(True, "teacher: false uses model / gguf_file as given, without training (a teacher you "
                              "fine-tuned yourself): the plan shows it as given, its fingerprint follows the "
                              "model's files, and its test accuracy is still measured. Students always train.")
    init: Literal["model", "teacher"] = _f("model", "Where the weights start: model (the pretrained `model` / "
                                                    "`gguf_file`, or from scratch at the size fields below) or, for "
                                                    "the student only, teacher: this run's fine-tuned teacher, with "
                                                    "blocks dropped by keep_every or keep_blocks (prune, then "
                                                    "distill: DistilBERT, Minitron); its tokenizer comes along.")
    keep_every: PosInt = _f(1, "Pretrained start with fewer layers: keep every n-th transformer block of `model` (1 = "
                               "all; 3 keeps 10 of SmolLM2's 30), the usual smaller pretrained student.")
    keep_by: Literal["position", "influence"] = _f("position", "Which of the blocks keep_every's share keeps: "
                                                   "position (0, n, 2n, ...) or influence: the ceil(blocks / n) "
                                                   f"that change their input most on {INFLUENCE_EXAMPLES} training "
                                                   "examples (1 - cosine of a block's input and output; "
                                                   "ShortGPT's Block Influence), measured on the weights the "
                                                   "model starts from.")
    keep_blocks: list[int] = _f([], "Pretrained or teacher start: the transformer blocks to keep, by index in "
                                    "increasing order (e.g. [0, 10, 20, 29]; T5 needs block 0, which holds the "
                                    "position bias); [] = keep_every decides.")
    d_model: PosInt = _f(128, "From-scratch model: hidden size.")
    d_ff: PosInt = _f(512, "From-scratch model: feed-forward size.")
    num_layers: PosInt = _f(2, "From-scratch model: layers (a T5's decoder has as many as its encoder).")
    num_heads: PosInt = _f(4, "From-scratch model: attention heads (head size = d_model / num_heads).")
    dropout: float = _f(0.1, "From-scratch model: dropout rate.")
    max_input_length: PosInt = _f(128, "Inputs are truncated to this many tokens.")
    max_target_length: PosInt = _f(32, "Targets (labels, rationales) are truncated to this many tokens.")
    dtype: Dtype = _f("float32", "Compute dtype: float32, bfloat16, float16 or auto (bfloat16 where the device has "
                                 "native bf16: a CUDA GPU with it, a CPU with AVX512-BF16 or AMX; float32 elsewhere; "
                                 "what it resolved to is in environment.json). bf16 trains with mixed precision "
                                 "(float32 weights) on a GPU or a CPU, fp16 on a GPU only; evaluation runs the "
                                 "model in that dtype, attribution and kd logits too except under auto, which "
                                 "scores in float32 (bf16 changes top-k words).")
    gradient_checkpointing: bool = _f(False, "Trade compute for memory in training (large teachers).")
    train: TrainConfig = _f(TrainConfig(), "Optimisation settings.")
    lora: LoraConfig = _f(LoraConfig(), "teacher: LoRA fine-tuning through peft (off by default).")


@dataclass
class AttributionConfig:
    method: Method = _f("saliency", methods_doc())
    target: Literal["gold", "prediction"] = _f(
        "gold", "What is explained: gold (the label, as in the paper) or prediction (the teacher's own greedy output).")
    k: PosInt = _f(5, "Rationale length: the top-k words.")
    aggregation: Literal["sum", "max", "mean"] = _f("sum", "Sub-word scores to word scores: sum, max or mean.")
    order: Literal["score", "position", "aligned"] = _f(
        "score", "Order of rationale words: score (highest first), position, or aligned: for each target token in "
        "turn (special tokens and padding skipped) the not-yet-chosen word that most explains it, then the rest by "
        "score up to k, so the rationale follows the label. aligned needs per-target-token scores: "
        f"{_either(aligned_names())} (the random control keeps k random words).")
    quantity: Quantity = _f("logit", "What the gradient methods explain per target token: logit (the raw gold logit, "
                                     "the paper's), log_prob (log p(gold): the logit minus the log-normaliser) or "
                                     "margin (the gold logit minus the best other one: the decision, not the logit's "
                                     "size). Occlusion measures the drop in log_prob under both logit and log_prob, "
                                     "and in the margin under margin.")
    mass: float = _f(0.0, "Adaptive rationale length: 0 = off (always k words); p in (0, 1] = the fewest of the "
                          "selected words, taken in order, whose non-negative scores reach share p of all candidate "
                          "words' non-negative score, at least 1 and at most k.")
    teacher_wrong: Literal["keep", "drop"] = _f(
        "keep", "Examples the teacher gets wrong (greedy prediction != gold label): keep their rationales, or drop "
        "them (empty rationale; rows carry teacher_correct). The random control is never dropped.")
    skip_punctuation: bool = _f(True, "Never pick punctuation as a rationale word.")
    stop_words: list[str] = _f([], "Words never picked as rationale words (case-insensitive); the entry 'english' "
                                   "adds a built-in list of English function words.")
    norm: Literal["l1", "l2"] = _f("l1", "saliency_stepwise: norm of each target token's gradient, l1 or l2.")
    ig_steps: PosInt = _f(50, "integrated_gradients: quadrature points on the path from the baseline.")
    ig_baseline: Literal["zero", "pad"] = _f("pad", "integrated_gradients: baseline embedding, pad (the pad token's "
                                                    "embedding at every position) or zero. T5's RMS norm makes the "
                                                    "model almost scale-invariant, so on the zero path nearly all "
                                                    "change happens next to the baseline and the integral does not "
                                                    "converge (completeness fails); pad does.")
    ig_internal_batch_size: PosInt = _f(256, "integrated_gradients: path points per forward pass.")
    batch_size: PosInt = _f(64, "Examples per backward pass.")
    shard_size: PosInt = _f(1024, "Examples per cached shard: an interrupted attribution resumes at the next shard, "
                                  "and `accelerate launch` splits the shards across processes.")


@dataclass
class DistillConfig:
    variants: list[str] = _f(["standard", "kd", "saliency", "match:occlusion"], variants_doc())
    rationale_weight: NonNegFloat = _f(0.5, "lambda in L = L_label + lambda * L_rationale.")
    kd_alpha: float = _f(0.5, "kd: alpha in L_label = (1 - alpha) CE + alpha T^2 D(p_teacher^T || p_student^T).")
    kd_temperature: PosFloat = _f(2.0, "kd: softmax temperature T of both distributions.")
    kd_divergence: Literal["forward_kl", "reverse_kl", "jsd"] = _f(
        "forward_kl", "kd: D = forward_kl (DistillKit's default), reverse_kl, or jsd (generalised JSD with weight "
        "kd_beta, as TRL's GKD).")
    kd_beta: float = _f(0.5, "kd: beta of the generalised JSD (0.5 = the symmetric JSD).")
    match_weight: NonNegFloat = _f(1.0, "match: mu in L = L_label + mu * KL(teacher word scores || student saliency).")
    term_every: PosInt = _f(1, "A loss term (match:<guide>) on every n-th optimizer step only, the label loss alone on "
                               "the others: a cheaper schedule for a term that costs a double backward (1 = every "
                               "step).")
    kd_top_k: PosInt = _f(16, "kd: teacher logits kept per target token (plus the rest's mass); the vocabulary size "
                              "gives exact KD.")
    format: Literal["two_task", "single", "label_first"] = _f(
        "two_task", "two_task: predict:/explain: prompts (DSbS, the paper); single: one target, rationale first, 'w1, "
        "w2, ..., so the answer is X' (the answer is read after the last 'so the answer is'); label_first: one target "
        "'X, because w1, w2, ...' (the answer is read before the first 'because'; Wadhwa et al. 2024 found label "
        "first better).")
    seeds: list[int] = _f([0], "One student per seed and variant; accuracy is reported as mean and std.")
    student_limit: NonNegInt = _f(0, "Students learn from N student-train examples only: the first N after a shuffle "
                                     "seeded by data.seed, the same for every variant and seed (0 = all). The "
                                     "teacher's attributions and kd's logits are made for these N alone (occlusion "
                                     "costs seconds per example on a real model), so changing N recomputes them; the "
                                     "teacher, and the blocks a pruned student keeps, are of the whole split.")


@dataclass
class EvalConfig:
    batch_size: PosInt = _f(128, "Examples per generate() call.")
    max_new_tokens: PosInt = _f(64, "Greedy decoding stops at EOS or after this many tokens.")
    rationale_limit: NonNegInt = _f(0, "Rationale F1 (how well a student reproduces the rationale it was taught) on "
                                       "the first N test examples only (0 = all): the teacher attributes them with the "
                                       "taught method, seconds per example with occlusion on a real model.")


@dataclass
class AnalysisConfig:
    k_sweep: list[int] = _f([], "Also train attribution.method students with each of these k (the paper: 1..10 on "
                                "ANLI and CQA) and report accuracy vs k; [] = no sweep.")
    methods: list[str] = _f([], "More attribution methods to score and compare (recall, faithfulness, human "
                                "agreement) without training students on them; a method named in distill.variants is "
                                "compared anyway.")
    faithfulness_examples: NonNegInt = _f(200, "Student-train examples on which each method's comprehensiveness and "
                                               "sufficiency are measured with the teacher (0 = skip).")
    fractions: list[float] = _f(
        [0.01, 0.05, 0.1, 0.2], "Shares of the input words deleted / kept for faithfulness (AOPC over these, as "
        "ERASER).")


@dataclass
class RunConfig:
    name: str = _f("default", "Run name; the run directory is runs/<name> unless --out is given.")
    data: DataConfig = _f(DataConfig(), "Which task and how much of it.")
    teacher: ModelConfig = _f(ModelConfig(d_model=128, d_ff=512, num_layers=2, num_heads=4,
                                          train=TrainConfig(max_steps=500, eval_steps=250)),
                              "The teacher model and its fine-tuning.")
    student: ModelConfig = _f(ModelConfig(d_model=64, d_ff=256, num_layers=2, num_heads=4,
                                          train=TrainConfig(batch_size=16, max_steps=800, eval_steps=100,
                                                            patience=3)),
                              "The student model and its training (shared by every variant).")
    attribution: AttributionConfig = _f(AttributionConfig(), "How the teacher's rationales are computed.")
    distill: DistillConfig = _f(DistillConfig(), "Which students to train.")
    eval: EvalConfig = _f(EvalConfig(), "Test-set evaluation.")
    analysis: AnalysisConfig = _f(AnalysisConfig(), "The paper's analyses and rationale-quality measures.")
    paper: str | None = _f(None, "Paper setting '<dataset>/<student model>' (e.g. cqa/t5-small) whose published "
                                 "accuracies the report prints beside the measured ones.")
    report_to: list[str] = _f([], "Experiment tracking of every training run through transformers' Trainer, e.g. "
                                  "[tensorboard] (event files in <model folder>/checkpoints/runs), [wandb] or "
                                  "[mlflow] (their package installed); [] = none. Changes no result, so no stage "
                                  "reruns for it.")




def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` (choices, ranges, types); ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *bounds = typing.get_args(tp)
        value = _coerce(value, base, where)
        for bound in bounds:
            if not bound.holds(value):
                raise ConfigError(f"{where}: expected {bound}, got {value!r}")
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected one of {', '.join(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:   # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool) or tp is not bool and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, raw: dict[str, Any], prefix: str = "", base: Any = None) -> Any:
    """Dataclass `cls` from a mapping, on top of `base` (default: the field defaults)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    known = _fields(cls)
    base = cls() if base is None else base
    for key, value in raw.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean '{(prefix + '.' if prefix else '') + near[0]}'?" if near else ""
            raise ConfigError(f"unknown config key '{where}'{hint} (valid: {', '.join(known)})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
            value = _build(tp, value, where, getattr(base, key))
        else:
            value = _coerce(value, tp, where)
        setattr(base, key, value)
    return base


def _model_problem(model: str | None) -> str | None:
    """Why `model` cannot load, when that is knowable before any work: a missing local path, or offline."""
    if model is None or Path(model).expanduser().exists():
        return None
    if model.startswith(("/", "./", "../", "~")) or model.count("/") > 1:
        return f"{model!r} is not an existing directory (a local model path must exist; a hub id looks like org/name)"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache
        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            return f"{model!r} is neither a local directory nor in the hub cache, and HF_HUB_OFFLINE=1"
    return None


def pretrained(m: ModelConfig) -> bool:
    """Whether a role starts from given weights (a model, a GGUF file, the run's teacher), not from scratch."""
    return bool(m.model or m.gguf_file) or m.init == "teacher"


def gguf_path(m: ModelConfig) -> Path | None:
    """The local file `m.gguf_file` names (a path, or a file name inside the folder `model`); None for a file in
    a hub repository (`model` is a hub id)."""
    if m.model and not Path(m.model).expanduser().exists():
        return None
    return Path(m.model or ".").expanduser() / Path(m.gguf_file or "").expanduser()   # an absolute gguf_file wins


def given_files(m: ModelConfig) -> Path | None:
    """The local file or folder a pretrained model's weights are read from: its GGUF file, its folder, or its hub
    id's snapshot in the local cache; None where none is found here."""
    if m.gguf_file:
        path = gguf_path(m)
        return path if path is not None and path.is_file() else None
    if m.model and Path(m.model).expanduser().is_dir():
        return Path(m.model).expanduser()
    if m.model:
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(m.model, local_files_only=True))
        except Exception:   # noqa: BLE001 - not cached (or not a hub id): check_environment says which
            return None
    return None


def _gguf_problem(m: ModelConfig) -> str | None:
    """Why `m.gguf_file` cannot load, when that is knowable before any work: no such local file, or no gguf package."""
    if importlib.util.find_spec("gguf") is None:
        return "reading a GGUF file needs the gguf package: pip install 'attrdistill[gguf]'"
    path = gguf_path(m)
    if path is not None and not path.is_file():
        return f"{str(path)!r} is not a file (expected a path, or a file name inside `model`)"
    return None


def validate(cfg: RunConfig) -> RunConfig:
    """The checks that span fields (choices and ranges are the fields' types, checked by `_build`).

    Nothing here looks at files, the hub cache or installed packages: `check_environment` does, when a run
    starts, so a config written for another machine still resolves here."""
    if cfg.teacher.init != "model":
        raise ConfigError(f"teacher.init: expected one of model (only a student starts from the teacher), got "
                          f"{cfg.teacher.init!r}")
    if not cfg.distill.variants:
        raise ConfigError("distill.variants: expected at least one student variant (a run compares students with "
                          "its teacher), e.g. [standard, saliency]")
    parsed: dict[Any, str] = {}
    for v in cfg.distill.variants:
        try:
            variant = parse_variant(v)
        except ValueError as e:
            raise ConfigError(f"distill.variants: {e}") from None
        if variant.objective == "kd" and cfg.distill.format == "single":
            raise ConfigError(f"distill.variants: {v!r} distils the label's tokens, which the single format puts "
                              "after the rationale's; use distill.format: two_task or label_first")
        if variant.term is not None and cfg.student.gradient_checkpointing:
            raise ConfigError(f"student.gradient_checkpointing: {v!r} takes a gradient of the student's saliency (a "
                              "double backward), which checkpointed blocks do not give; set it false")
        if variant in parsed:   # the same students twice: a repeat, or another spelling ('kd+saliency', 'saliency+kd')
            again = _twice(cfg.distill.variants, v) if parsed[variant] == v else f"{v!r} is {parsed[variant]!r} again"
            raise ConfigError(f"distill.variants: {again}; each variant trains its students once")
        parsed[variant] = v
    if not 0 <= cfg.distill.kd_alpha <= 1 or not 0 < cfg.distill.kd_beta < 1:
        raise ConfigError(f"distill.kd_alpha / kd_beta: expected alpha in [0, 1] and beta in (0, 1), got "
                          f"{cfg.distill.kd_alpha} / {cfg.distill.kd_beta}")
    for m in cfg.analysis.methods:
        if m not in REGISTRY:
            raise ConfigError(f"analysis.methods: unknown method {m!r}; expected some of {', '.join(method_names())}")
    if any(k <= 0 for k in cfg.analysis.k_sweep):
        raise ConfigError(f"analysis.k_sweep: every k must be > 0, got {cfg.analysis.k_sweep}")
    if not cfg.analysis.fractions or any(not 0 < q <= 1 for q in cfg.analysis.fractions):
        raise ConfigError(f"analysis.fractions: expected shares in (0, 1], got {cfg.analysis.fractions}")
    if not cfg.distill.seeds:
        raise ConfigError("distill.seeds: expected at least one seed")
    repeated = next((s for s in cfg.distill.seeds if cfg.distill.seeds.count(s) > 1), None)
    if repeated is not None:
        raise ConfigError(f"distill.seeds: {_twice(cfg.distill.seeds, repeated, 'seed ')}; a seed trains each "
                          "variant once, and the report's mean and std count seeds")
    _validate_attribution(cfg)
    if cfg.student.train.max_steps == 0:
        raise ConfigError("student.train.max_steps: expected a value > 0 (teacher.train.max_steps may be 0: "
                          "no fine-tuning), got 0")
    if cfg.paper is not None and cfg.paper not in SETTINGS:
        raise ConfigError(f"paper: expected one of {', '.join(SETTINGS)}, got {cfg.paper!r}")
    if cfg.data.source == "files":
        for key in ("train_file", "test_file"):
            if not getattr(cfg.data, key):
                raise ConfigError(f"data.{key}: expected a .jsonl/.csv file for source 'files', got None")
    if cfg.data.transfer_file is not None:
        if cfg.data.source != "files":
            raise ConfigError(f"data.transfer_file: unlabelled inputs of source 'files' (data.source is "
                              f"{cfg.data.source!r}); unset it")
        needs = [v for v in cfg.distill.variants if data_reads(v)]
        if needs:
            raise ConfigError(f"data.transfer_file: {needs[0]!r} reads {data_reads(needs[0])} from the data, which the "
                              "teacher-labelled rows lack; drop the variant or the transfer file")
    if cfg.data.student_train_file is not None and cfg.data.source != "files":
        raise ConfigError(f"data.student_train_file: a file of source 'files' (data.source is {cfg.data.source!r}); "
                          "unset it, or use distill.student_limit for fewer student examples")
    if cfg.data.input_template is not None:
        if cfg.data.source != "files":
            raise ConfigError(f"data.input_template: builds inputs of source 'files' (data.source {cfg.data.source!r} "
                              "formats its own); unset it")
        from attrdistill.modeling.template import Template
        try:
            Template(cfg.data.input_template)
        except ConfigError as e:
            raise ConfigError(f"data.input_template: {e}") from None
    if cfg.data.loader == "esnli_csv" and cfg.data.source != "esnli":
        raise ConfigError(f"data.loader: esnli_csv reads e-SNLI only, but data.source is {cfg.data.source!r}")
    if cfg.student.lora.rank:
        raise ConfigError("student.lora.rank: LoRA is for the teacher (students are small and train every weight); "
                          "set it 0")
    if cfg.teacher.lora.rank and not cfg.teacher.finetune:
        raise ConfigError("teacher.lora.rank: a given teacher (finetune: false) is not trained; set it 0")
    if not cfg.student.finetune:
        raise ConfigError("student.finetune: students always train (finetune: false is for the teacher); set it true")
    if not cfg.teacher.finetune and not (cfg.teacher.model or cfg.teacher.gguf_file):
        raise ConfigError("teacher.finetune: false uses a given model as the teacher; set teacher.model (a hub id or "
                          "folder) or teacher.gguf_file")
    for role in ("teacher", "student"):
        m: ModelConfig = getattr(cfg, role)
        if m.init == "teacher" and (m.model or m.gguf_file or m.tokenizer):
            raise ConfigError(f"{role}.init: teacher starts from the teacher's weights and tokenizer; unset "
                              f"{role}.model, gguf_file and tokenizer (or use init: model)")
        if m.keep_blocks and (min(m.keep_blocks) < 0 or m.keep_blocks != sorted(set(m.keep_blocks))):
            raise ConfigError(f"{role}.keep_blocks: expected block indices >= 0 in increasing order, got "
                              f"{m.keep_blocks}")
        if m.keep_by == "influence" and (m.keep_every == 1 or m.keep_blocks):
            raise ConfigError(f"{role}.keep_by: influence chooses keep_every's share of the blocks; set "
                              f"{role}.keep_every > 1 and leave keep_blocks empty (it names the blocks itself)")
        if (m.keep_blocks or m.keep_every > 1) and not pretrained(m):
            raise ConfigError(f"{role}.keep_every / keep_blocks: drop blocks of given weights (model, gguf_file or "
                              "init: teacher); a from-scratch model takes num_layers")
        if not pretrained(m) and m.d_model % m.num_heads:
            raise ConfigError(f"{role}.d_model: expected a multiple of {role}.num_heads ({m.num_heads}), "
                              f"got {m.d_model}")
        _check_kept_blocks(cfg, role, files=False)   # a student cut from a from-scratch teacher: its num_layers
    return cfg


def _twice(values: list, value: Any, what: str = "") -> str:
    """'seed 0 appears twice' (or 'N times')."""
    n = values.count(value)
    return f"{what}{value if what else repr(value)} appears {'twice' if n == 2 else f'{n} times'}"


def _start_blocks(cfg: RunConfig, role: str, files: bool) -> tuple[str, Blocks] | None:
    """(who, blocks) of the weights `role` starts from, before its own keep_* cut: a from-scratch model's
    num_layers; with `files`, a pretrained model's config.json or GGUF header; with init: teacher, the teacher's
    after the teacher's own cut. None where that is not known (files needed, unreadable or not cached)."""
    m: ModelConfig = getattr(cfg, role)
    if m.init == "teacher":
        found = _start_blocks(cfg, "teacher", files)
        if found is None:
            return None
        t = cfg.teacher
        return f"the teacher ({role}.init: teacher)", found[1].pruned(t.keep_blocks, t.keep_every, "teacher")
    if not pretrained(m):
        return f"the from-scratch {role}", Blocks(m.num_layers, m.architecture == "t5", f"{role}.num_layers")
    if not files:
        return None
    if m.gguf_file:
        path = _gguf_local(m)
        blocks = read_gguf(path) if path is not None else None
    else:
        path = _config_json(str(m.model))
        blocks = read_config_json(path) if path is not None else None
    return (f"{role}.{'gguf_file' if m.gguf_file else 'model'}", blocks) if blocks is not None else None


def _check_kept_blocks(cfg: RunConfig, role: str, files: bool) -> None:
    """`role.keep_blocks` names blocks its starting weights have (and, for a T5, block 0), where the block count
    is known: from the size fields (`validate`), or also from the model's files (`check_environment`)."""
    m: ModelConfig = getattr(cfg, role)
    found = _start_blocks(cfg, role, files) if m.keep_blocks else None
    if found is None:
        return
    who, blocks = found
    problem = blocks.kept_problem(m.keep_blocks)
    if problem:
        raise ConfigError(f"{role}.keep_blocks: {problem}: {who} has {blocks.count} blocks"
                          f"{' in each stack' if blocks.encoder_decoder else ''} ({blocks.source})")


def _config_json(model: str) -> Path | None:
    """The config.json of a local model folder or a hub id (from the hub cache; online, that one small file is
    fetched: what loading reads first); None where there is none."""
    local = Path(model).expanduser()
    if local.exists():
        return local / "config.json" if (local / "config.json").is_file() else None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):
        return Path(cached)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    try:
        return Path(hf_hub_download(model, "config.json"))
    except (OSError, ValueError):   # no such repository, no network: loading the model says so
        return None


def _gguf_local(m: ModelConfig) -> Path | None:
    """The GGUF file `m` names on this machine: a local path, or a hub repository's file in the hub cache (a
    GGUF file is the weights, so nothing is fetched for its header)."""
    path = gguf_path(m)
    if path is not None:
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache
    cached = try_to_load_from_cache(str(m.model), str(m.gguf_file))
    return Path(cached) if isinstance(cached, str) else None


# What each stage reads from outside the run directory: the data, the teacher's weights, the student's.
_ENVIRONMENT = {"data": ("data",), "finetune": ("teacher",), "distill": ("student",)}


def check_environment(cfg: RunConfig, stages: list[str] | None = None) -> None:
    """Before any work of `stages` (None: all): the files, hub-cache entries and packages they need exist, and a
    pretrained model (or the teacher a student is cut from) has the blocks keep_blocks names, read from its
    config.json or GGUF header. Each problem is a ConfigError naming the field."""
    needs = {n for stage in (stages or _ENVIRONMENT) for n in _ENVIRONMENT.get(stage, ())}
    if "data" in needs:
        d = cfg.data
        if d.source == "files":
            for key in ("train_file", "test_file") + tuple(k for k in ("valid_file", "student_train_file",
                                                                       "transfer_file") if getattr(d, k)):
                value = getattr(d, key)
                if not value or not Path(value).is_file():
                    raise ConfigError(f"data.{key}: expected an existing .jsonl/.csv file for source 'files', "
                                      f"got {value!r}")
        elif d.source != "builtin" and d.loader != "hub" and not Path(d.path).is_dir():
            raise ConfigError(f"data.path: {d.path!r} is not a folder (expected "
                              f"{'the e-SNLI CSV files' if d.loader == 'esnli_csv' else 'the DSbS release'})")
    for role in ("teacher", "student"):
        if role not in needs:
            continue
        m: ModelConfig = getattr(cfg, role)
        problem = _model_problem(m.model)
        if problem:
            raise ConfigError(f"{role}.model: {problem}")
        problem = _gguf_problem(m) if m.gguf_file else None
        if problem:
            raise ConfigError(f"{role}.gguf_file: {problem}")
        _check_kept_blocks(cfg, role, files=True)   # the block count of a pretrained model: its config or header


def _validate_attribution(cfg: RunConfig) -> None:
    a = cfg.attribution
    if not 0 <= a.mass <= 1:
        raise ConfigError(f"attribution.mass: expected 0 (off) or a share in (0, 1], got {a.mass!r}")
    if a.order == "aligned":
        # Every teacher method the attribute stage scores: a variant's rationale source and the guide of its loss
        # term ('kd+saliency@k3', 'match:occlusion'); a seeded control (random) keeps score order.
        named = [m for v in cfg.distill.variants for m in (parse_variant(v).rationale, parse_variant(v).guide)]
        scored = [a.method] + [m for m in named if m in REGISTRY and not REGISTRY[m].seeded] + cfg.analysis.methods
        aligned = aligned_names()
        bad = [m for m in dict.fromkeys(scored) if m not in aligned]
        if bad:
            raise ConfigError(f"attribution.order: aligned needs per-target-token scores, which {', '.join(bad)} "
                              f"does not give; it works with {', '.join(aligned)}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], value parsed as YAML, so 3 is an int and [1,2] a list)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. attribution.k=3")
    key, value = text.split("=", 1)
    try:
        return key.strip().split("."), yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:   # columns count from the start of 'key=value'
        raise _yaml_error(e, f"override {text!r}", value, len(key) + 1) from None


def _yaml_error(e: yaml.YAMLError, where: str, text: str, offset: int = 0) -> ConfigError:
    """One line for a YAML syntax error in `text`: where, line and column (1-based; `offset` is added to columns
    of the first line), what was expected, and where the construct it was in began."""
    def at(line: int, column: int) -> str:
        return f"line {line + 1}, column {column + 1 + (offset if line == 0 else 0)}"
    if isinstance(e, yaml.reader.ReaderError):   # a character YAML does not allow: no mark, a position
        lines = text[:e.position].split("\n")
        character = f" (character {chr(e.character)!r})" if isinstance(e.character, int) else ""
        return ConfigError(f"{where}: {at(len(lines) - 1, len(lines[-1]))}: not valid YAML: {e.reason}{character}")
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or not problem:
        return ConfigError(f"{where}: not valid YAML: {' '.join(str(e).split())}")
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    began = f" that starts at {at(start.line, start.column)}" if start is not None else ""
    return ConfigError(f"{where}: {at(mark.line, mark.column)}: not valid YAML: {problem}"
                       + (f" ({context}{began})" if context else ""))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults <- YAML file <- `key=value` overrides, validated."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        content = path.read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(content) or {}
        except yaml.YAMLError as e:
            raise _yaml_error(e, str(path), content) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for text in overrides or []:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: '{k}' is not a section")
        node[keys[-1]] = value
    try:
        return validate(_build(RunConfig, raw))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path is not None else str(e)) from None


def attribution_settings(**fields: Any) -> AttributionConfig:
    """An AttributionConfig from keyword fields, checked as a config file's attribution section is (field names,
    types, ranges, and the checks across fields)."""
    cfg = _build(AttributionConfig, fields, "attribution")
    validate(dataclasses.replace(RunConfig(), attribution=cfg))
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    """YAML of the whole config with each field's documentation as a comment above it."""
    lines = ["# attrdistill run configuration: every field, its value and what it means.",
             "# `attrdistill config` prints the defaults; `--set section.field=value` overrides one field."]

    def emit(obj: Any, indent: int) -> None:
        pad = "  " * indent
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            lines.append(f"{pad}# {f.metadata.get('doc', '')}")
            if dataclasses.is_dataclass(value):
                lines.append(f"{pad}{f.name}:")
                emit(value, indent + 1)
            else:
                flow = isinstance(value, list)
                lines.append(pad + yaml.safe_dump({f.name: value}, default_flow_style=flow, width=1000).strip()
                             .removeprefix("{").removesuffix("}"))

    emit(cfg, 0)
    return "\n".join(lines) + "\n"


def field_docs(obj: Any = None, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, doc) for every leaf field: the CLI's help lists them."""
    obj = RunConfig() if obj is None else obj
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += field_docs(value, f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", value, f.metadata.get("doc", "")))
    return out
