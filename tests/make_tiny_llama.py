#!/usr/bin/env python3
"""make_tiny_llama.py - writes a tiny Hugging Face llama checkpoint folder for the tests.

Usage: make_tiny_llama.py OUTDIR [--seed N] [--shards 1|2] [--f64-norm] [--spm]
       make_tiny_llama.py OUTDIR --forward ID,ID,...

The folder is what a real LlamaForCausalLM checkpoint holds, only small: config.json (2 layers,
hidden 256 so every K-quant's 256-weight block fits a row, 4 heads, 2 KV heads, FFN 512,
vocab 300), tokenizer.json (a byte-level BPE vocabulary: the 256 GPT-2 byte tokens, a few
merges, two special tokens, and ids 298-299 left unassigned so the converter must pad them),
tokenizer_config.json, and seeded Gaussian weights in safetensors - 2-D weights as BF16, norms
as F32 - either as model.safetensors or as two shards with model.safetensors.index.json.
--f64-norm stores model.norm.weight as F64, a dtype the quantizer must refuse. --spm writes a
SentencePiece-style tokenizer instead (BPE with byte_fallback, as HF converts llama 2's):
<unk> <s> </s>, the byte tokens <0x00>..<0xFF> (ids 3..258), a few pieces and merges that
build "\u2581the" (id 268) and "\u2581and" (id 271), 28 ids left for padding.
--forward reads the checkpoint in OUTDIR back and prints, as a JSON list, the logits of the
last of the given tokens as Hugging Face's LlamaForCausalLM computes them (RMSNorm, RoPE with
rotate_half on the HF weight layout, grouped-query causal attention, SwiGLU), in float64: the
reference llama.cpp's logits on the converted file must match.
Python standard library only (no numpy, no torch): safetensors is an 8-byte length, a JSON
header and the raw little-endian bytes.
"""
import argparse
import json
import math
import os
import random
import struct
import sys
from array import array

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, VOCAB = 256, 512, 2, 4, 2, 300
HEAD_DIM = HIDDEN // HEADS


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def tokenizer():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    sp = b2u[ord(" ")]
    pairs = [("h", "e"), ("t", "h"), ("th", "e"), (sp, "t"), (sp, "a"), ("i", "n"), ("e", "r"), ("o", "n"),
             (sp + "t", "he"), ("a", "n"), ("r", "e"), ("e", "n"), ("a", "t"), (sp, "s"),
             ("o", "r"), (sp, "w"), ("e", "s"), (sp, "o"), ("i", "s"), ("i", "t"), ("a", "l"),
             (sp, "c"), ("a", "r"), ("e", "d"), (sp, "b"), ("in", "g"), (sp, "f"), ("o", "u"),
             (sp, "p"), ("l", "e"), ("i", "c"), (sp, "m"), ("a", "s"), ("r", "o"), ("l", "l"),
             (sp + "a", "n"), (sp + "an", "d"), (sp, "in"), (sp + "o", "f"), (sp, "d")]
    merges = []
    for a, b in pairs:
        assert a in vocab and b in vocab, (a, b)
        vocab[a + b] = len(vocab)
        merges.append(a + " " + b)
    assert len(vocab) == 296
    added = [{"id": 296, "content": "<|begin_of_text|>", "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True},
             {"id": 297, "content": "<|end_of_text|>", "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges},
    }


def spm_tokenizer():
    sp = "\u2581"
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = 3 + b
    for piece in (sp, "t", "h", "e", "a", "n", "d"):
        vocab[piece] = len(vocab)
    pairs = [(sp, "t"), ("h", "e"), (sp + "t", "he"), ("a", "n"), ("an", "d"), (sp, "and")]
    merges = []
    for a, b in pairs:
        vocab[a + b] = len(vocab)
        merges.append(a + " " + b)
    assert vocab[sp + "the"] == 268 and vocab[sp + "and"] == 271
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(("<unk>", "<s>", "</s>"))]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": sp}, {"type": "Replace", "pattern": {"String": " "},
                                                 "content": sp}]},
        "pre_tokenizer": None, "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "vocab": vocab, "merges": merges},
    }


def bf16_bytes(values):
    """float32 -> bfloat16, round to nearest even (NaN-free input), little-endian bytes."""
    f32 = array("f", values)
    u32 = array("I")
    u32.frombytes(f32.tobytes())
    out = array("H", (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF for u in u32))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def f32_bytes(values):
    a = array("f", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def f64_bytes(values):
    a = array("d", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def tensors(seed, f64_norm):
    """(name, dtype, shape, bytes) in a fixed order, seeded."""
    rng = random.Random(seed)

    def gauss(n, std):
        return [rng.gauss(0.0, std) for _ in range(n)]

    def mat(name, rows, cols):
        return (name, "BF16", [rows, cols], bf16_bytes(gauss(rows * cols, 0.05)))

    def norm(name):
        v = [1.0 + x for x in gauss(HIDDEN, 0.1)]
        if f64_norm and name == "model.norm.weight":
            return (name, "F64", [HIDDEN], f64_bytes(v))
        return (name, "F32", [HIDDEN], f32_bytes(v))

    out = [mat("model.embed_tokens.weight", VOCAB, HIDDEN)]
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        out += [norm(p + "input_layernorm.weight"),
                mat(p + "self_attn.q_proj.weight", HEADS * HEAD_DIM, HIDDEN),
                mat(p + "self_attn.k_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN),
                mat(p + "self_attn.v_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN),
                mat(p + "self_attn.o_proj.weight", HIDDEN, HEADS * HEAD_DIM),
                norm(p + "post_attention_layernorm.weight"),
                mat(p + "mlp.gate_proj.weight", FFN, HIDDEN),
                mat(p + "mlp.up_proj.weight", FFN, HIDDEN),
                mat(p + "mlp.down_proj.weight", HIDDEN, FFN)]
    out += [norm("model.norm.weight"), mat("lm_head.weight", VOCAB, HIDDEN)]
    return out


def write_safetensors(path, items):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, data in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the reference writer pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, data in items:
            f.write(data)


def read_checkpoint(outdir):
    """name -> (shape, flat list of floats) from the folder's safetensors file(s)."""
    files = [f for f in sorted(os.listdir(outdir)) if f.endswith(".safetensors")]
    out = {}
    for fname in files:
        with open(os.path.join(outdir, fname), "rb") as f:
            blob = f.read()
        n = struct.unpack("<Q", blob[:8])[0]
        header = json.loads(blob[8:8 + n])
        base = 8 + n
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, end = e["data_offsets"]
            raw = blob[base + b:base + end]
            if e["dtype"] == "BF16":
                u16 = array("H")
                u16.frombytes(raw)
                f32 = array("f")
                f32.frombytes(array("I", (u << 16 for u in u16)).tobytes())
                vals = f32.tolist()
            elif e["dtype"] == "F32":
                vals = array("f", raw).tolist()
            else:
                raise SystemExit("--forward: %s has dtype %s" % (name, e["dtype"]))
            out[name] = (e["shape"], vals)
    return out


def forward(outdir, tokens):
    """Last-position logits of LlamaForCausalLM (transformers' modeling_llama), float64."""
    with open(os.path.join(outdir, "config.json")) as f:
        cfg = json.load(f)
    w = read_checkpoint(outdir)
    hid, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, theta = hid // nh, cfg["rms_norm_eps"], cfg["rope_theta"]

    def mat(name):
        (rows, cols), v = w[name]
        return [v[r * cols:(r + 1) * cols] for r in range(rows)]

    def matvec(m, x):
        return [math.fsum(a * b for a, b in zip(row, x)) for row in m]

    def rmsnorm(x, g):
        s = 1.0 / math.sqrt(math.fsum(v * v for v in x) / len(x) + eps)
        return [v * s * gi for v, gi in zip(x, g)]

    def rope(v, pos):  # rotate_half: pairs (i, i + hd/2) within each head
        out = list(v)
        for h in range(len(v) // hd):
            for i in range(hd // 2):
                ang = pos * theta ** (-2.0 * i / hd)
                c, s_ = math.cos(ang), math.sin(ang)
                a, b = v[h * hd + i], v[h * hd + i + hd // 2]
                out[h * hd + i] = a * c - b * s_
                out[h * hd + i + hd // 2] = b * c + a * s_
        return out

    emb = mat("model.embed_tokens.weight")
    xs = [list(emb[t]) for t in tokens]
    for layer in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        wq, wk, wv, wo = (mat(p + "self_attn.%s_proj.weight" % n) for n in "qkvo")
        gate, up, down = (mat(p + "mlp.%s_proj.weight" % n) for n in ("gate", "up", "down"))
        g_in, g_post = w[p + "input_layernorm.weight"][1], w[p + "post_attention_layernorm.weight"][1]
        hs = [rmsnorm(x, g_in) for x in xs]
        qs = [rope(matvec(wq, h), i) for i, h in enumerate(hs)]
        ks = [rope(matvec(wk, h), i) for i, h in enumerate(hs)]
        vs = [matvec(wv, h) for h in hs]
        for i in range(len(xs)):
            att = []
            for h in range(nh):
                kvh = h // (nh // nkv)
                q = qs[i][h * hd:(h + 1) * hd]
                sc = [math.fsum(a * b for a, b in zip(q, ks[j][kvh * hd:(kvh + 1) * hd]))
                      / math.sqrt(hd) for j in range(i + 1)]
                mx = max(sc)
                e = [math.exp(v - mx) for v in sc]
                z = math.fsum(e)
                att += [math.fsum(e[j] / z * vs[j][kvh * hd + d] for j in range(i + 1))
                        for d in range(hd)]
            xs[i] = [a + b for a, b in zip(xs[i], matvec(wo, att))]
            h2 = rmsnorm(xs[i], g_post)
            act = [g / (1.0 + math.exp(-g)) * u for g, u in zip(matvec(gate, h2), matvec(up, h2))]
            xs[i] = [a + b for a, b in zip(xs[i], matvec(down, act))]
    last = rmsnorm(xs[-1], w["model.norm.weight"][1])
    return matvec(mat("lm_head.weight"), last)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--shards", type=int, choices=(1, 2), default=1)
    ap.add_argument("--f64-norm", action="store_true")
    ap.add_argument("--spm", action="store_true")
    ap.add_argument("--forward", metavar="IDS")
    a = ap.parse_args()
    if a.forward:
        json.dump(forward(a.outdir, [int(t) for t in a.forward.split(",")]), sys.stdout)
        return
    os.makedirs(a.outdir, exist_ok=True)

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": 296, "eos_token_id": 297,
        "hidden_act": "silu", "torch_dtype": "bfloat16",
    }
    tok_config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                  "add_bos_token": True, "add_eos_token": False,
                  "model_max_length": 2048, "tokenizer_class": "PreTrainedTokenizerFast"}
    if a.spm:
        config.update(bos_token_id=1, eos_token_id=2)
        tok_config.update(bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                          tokenizer_class="LlamaTokenizerFast")
    with open(os.path.join(a.outdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.outdir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(spm_tokenizer() if a.spm else tokenizer(), f, ensure_ascii=False)
    with open(os.path.join(a.outdir, "tokenizer_config.json"), "w") as f:
        json.dump(tok_config, f, indent=2)

    items = tensors(a.seed, a.f64_norm)
    if a.shards == 1:
        write_safetensors(os.path.join(a.outdir, "model.safetensors"), items)
        return
    half = len(items) // 2
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    parts = [items[:half], items[half:]]
    weight_map = {}
    for fname, part in zip(names, parts):
        write_safetensors(os.path.join(a.outdir, fname), part)
        for name, _, _, _ in part:
            weight_map[name] = fname
    total = sum(len(d) for _, _, _, d in items)
    with open(os.path.join(a.outdir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


if __name__ == "__main__":
    main()
