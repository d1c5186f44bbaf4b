"""Cold start, heavy: setup() imports onnxruntime and creates an InferenceSession on a tiny model."""

import time

from coldtimes import replica_times

import fn

IMPORTED = time.time()


@fn.model(name="cold-heavy", cpus=0.25, idle_timeout_s=3, max_replicas=1)
class ColdHeavy:
    def setup(self) -> None:
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
        onnx.checker.check_model(model)
        self.session = ort.InferenceSession(model.SerializeToString())
        self.np = np
        self.times = replica_times(IMPORTED, time.time())

    def __call__(self, x: int) -> dict[str, object]:
        y = self.session.run(None, {"x": self.np.full((1, 4), x, dtype=self.np.float32)})[0]
        return {"x": float(y[0][0]), "times": {**self.times, "now": time.time()}}
