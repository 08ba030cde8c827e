"""Triton Python-backend model that runs a ``model.onnx`` with ONNX Runtime.

Copied by ``scripts/triton_local.py`` into ``<model>/<version>/model.py`` of a generated
repository; it runs inside the Triton Python backend stub (``.venv-triton``), not in AIWS.
Requests of one dynamic batch are concatenated and run as one ONNX Runtime call.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("AIWS_TRITON_ORT_THREADS", "0"))
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests):
        feeds = {name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests]
                 for name in self.inputs}
        if self.batched and len(requests) > 1:
            sizes = [a.shape[0] for a in feeds[self.inputs[0]]]
            merged = {name: np.concatenate(arrays) for name, arrays in feeds.items()}
            values = self.session.run(self.outputs, merged)
            bounds = np.cumsum([0] + sizes)
            per_request = [[v[bounds[i]:bounds[i + 1]] for v in values] for i in range(len(requests))]
        else:
            per_request = [self.session.run(self.outputs, {n: feeds[n][i] for n in self.inputs})
                           for i in range(len(requests))]
        return [pb_utils.InferenceResponse([pb_utils.Tensor(n, v) for n, v in zip(self.outputs, values)])
                for values in per_request]
