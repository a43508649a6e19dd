"""Writes two tiny GGUF models with random weights for tests/ollama_probe.rs.

usage: tiny_gguf.py OUT_DIR

- tiny-chat.gguf: a one-layer llama model, which Ollama v0.12.6 treats as a
  completion model;
- tiny-embed.gguf: the same with `llama.pooling_type`, which makes it an
  embedding-only model to Ollama (server/images.go lines 82-87: a model with
  `<arch>.pooling_type` has the embedding capability and not completion).

The weights are random: the tests load the models and ask for nothing that
needs sensible output. Written with the `gguf` package (llama.cpp's own).
"""

import sys
from pathlib import Path

import gguf
import numpy as np

EMBED, FFN, HEADS, LAYERS, CONTEXT = 32, 64, 2, 1, 256


def vocabulary():
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    for word in ["▁", "▁a", "▁the", "▁hello", "▁world", "a", "e", "o", "t"]:
        tokens.append(word)
        types.append(gguf.TokenType.NORMAL)
    scores = [0.0] * len(tokens)
    return tokens, scores, types


def write(path: Path, embedding: bool) -> None:
    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(path.stem)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBED)
    writer.add_feed_forward_length(FFN)
    writer.add_block_count(LAYERS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    if embedding:
        writer.add_pooling_type(gguf.PoolingType.MEAN)
    tokens, scores, types = vocabulary()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    vocab = len(tokens)

    def tensor(name, *shape):
        # numpy shape is the reverse of GGUF's ne order.
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    tensor("token_embd.weight", vocab, EMBED)
    for i in range(LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(EMBED, dtype=np.float32))
        tensor(f"blk.{i}.attn_q.weight", EMBED, EMBED)
        tensor(f"blk.{i}.attn_k.weight", EMBED, EMBED)
        tensor(f"blk.{i}.attn_v.weight", EMBED, EMBED)
        tensor(f"blk.{i}.attn_output.weight", EMBED, EMBED)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(EMBED, dtype=np.float32))
        tensor(f"blk.{i}.ffn_gate.weight", FFN, EMBED)
        tensor(f"blk.{i}.ffn_up.weight", FFN, EMBED)
        tensor(f"blk.{i}.ffn_down.weight", EMBED, FFN)
    writer.add_tensor("output_norm.weight", np.ones(EMBED, dtype=np.float32))
    tensor("output.weight", vocab, EMBED)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    write(out / "tiny-chat.gguf", embedding=False)
    write(out / "tiny-embed.gguf", embedding=True)


if __name__ == "__main__":
    main()
