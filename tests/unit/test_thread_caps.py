"""Replicas cap onnxruntime's thread pools at their CPU share (it ignores OMP_NUM_THREADS)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SCRIPT = textwrap.dedent("""
    import sys
    from fnplatform.serving.replica import cap_onnxruntime_threads

    cap_onnxruntime_threads(2)
    assert "onnxruntime" not in sys.modules, "the cap must not import onnxruntime itself"
    import onnx
    from onnx import TensorProto, helper
    import onnxruntime as ort

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()
    default = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 5
    explicit = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    print(default.get_session_options().intra_op_num_threads, default.get_session_options().inter_op_num_threads,
          explicit.get_session_options().intra_op_num_threads)
""")


def test_sessions_default_to_the_replica_share_and_explicit_settings_win() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "1", "5"]
