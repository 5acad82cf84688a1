"""The e2e tests' Triton Python-backend model: OUTPUT = INPUT * 2, failing on a share of calls.

Inputs and outputs (the ModelDeployment's runtimeConfig declares them; batch dimension first):
  INPUT   TYPE_FP32  dims [4]
  OUTPUT  TYPE_FP32  dims [4]

``FAIL_EVERY`` (0 in the good version; the test uploads a copy with another value as the bad
version): every FAIL_EVERY-th ``execute`` call raises, so every request of that call fails inside
the backend, which is what Triton counts in ``nv_inference_request_failure``.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

FAIL_EVERY = 0


class TritonPythonModel:
    def initialize(self, args):
        self.calls = 0

    def execute(self, requests):
        self.calls += 1
        if FAIL_EVERY and self.calls % FAIL_EVERY == 0:
            raise RuntimeError(f"call {self.calls}: this version fails every {FAIL_EVERY}th call")
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            output = pb_utils.Tensor("OUTPUT", (x * 2).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
