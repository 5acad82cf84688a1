"""A tiny Triton Python-backend model whose requests choose how they end (tests only).

Inputs (declared in the config.pbtxt the operator renders; batch dimension first):
  INPUT    TYPE_FP32  dims [4]
  CONTROL  TYPE_INT32 dims [1]   how the request ends, see below (the largest value of its rows)
Outputs:
  OUTPUT      TYPE_FP32  dims [4]   INPUT * 2
  BATCH_SIZE  TYPE_INT32 dims [1]   rows in the execute() call that served the request: more rows than
                                    the request sent means the dynamic batcher joined requests

CONTROL:
  0  OK: the outputs above.
  1  RAISE: ``execute`` raises, so every request of that call fails inside the backend.
  2  ERROR_RESPONSE: the request gets a response carrying a TritonError (an "error response").
  3  HOLD: ``execute`` creates ``held-<pid>-<n>`` in $TRITON_TEST_MODEL_GATE_DIR and waits until a
     file named ``release`` appears there (at most 60 s), then answers like OK. The test uses it to
     keep model instances busy while other requests queue. Without the variable: an error response.

``auto_complete_config`` declares the tensors, so the model also loads when config.pbtxt names none;
a config that declares one of them with other dims or type fails to load (Triton's own check), and
``initialize`` refuses a config whose inputs or outputs are not exactly these names.
"""

import json
import os
import time

import numpy as np
import triton_python_backend_utils as pb_utils

OK, RAISE, ERROR_RESPONSE, HOLD = 0, 1, 2, 3
GATE_ENV = "TRITON_TEST_MODEL_GATE_DIR"
HOLD_LIMIT_S = 60.0


INPUTS = (
    {"name": "INPUT", "data_type": "TYPE_FP32", "dims": [4]},
    {"name": "CONTROL", "data_type": "TYPE_INT32", "dims": [1]},
)
OUTPUTS = (
    {"name": "OUTPUT", "data_type": "TYPE_FP32", "dims": [4]},
    {"name": "BATCH_SIZE", "data_type": "TYPE_INT32", "dims": [1]},
)


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        for tensor in INPUTS:
            auto_complete_model_config.add_input(tensor)
        for tensor in OUTPUTS:
            auto_complete_model_config.add_output(tensor)
        return auto_complete_model_config

    def initialize(self, args):
        config = json.loads(args["model_config"])
        for kind, expected in (("input", INPUTS), ("output", OUTPUTS)):
            names = sorted(t["name"] for t in config[kind])
            if names != sorted(t["name"] for t in expected):
                raise ValueError(
                    f"this model has {kind}s {[t['name'] for t in expected]}, the config {names}"
                )
        self.max_batch_size = int(config["max_batch_size"])
        self.instance = args["model_instance_name"]
        self.calls = 0

    def _hold(self, gate_dir):
        self.calls += 1
        held = os.path.join(gate_dir, f"held-{os.getpid()}-{self.calls}")
        with open(held, "w") as f:
            f.write(self.instance)
        deadline = time.monotonic() + HOLD_LIMIT_S
        while not os.path.exists(os.path.join(gate_dir, "release")):
            if time.monotonic() > deadline:
                raise RuntimeError("HOLD: nobody released the gate")
            time.sleep(0.02)

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy() for r in requests]
        controls = [int(pb_utils.get_input_tensor_by_name(r, "CONTROL").as_numpy().max()) for r in requests]
        rows = sum(x.shape[0] for x in inputs)
        if rows > max(self.max_batch_size, 1):  # Triton never hands more than max_batch_size rows
            raise RuntimeError(f"{rows} rows in one call exceed max_batch_size {self.max_batch_size}")
        if RAISE in controls:
            raise RuntimeError("CONTROL=1: failure raised in execute, as requested")
        gate_dir = os.environ.get(GATE_ENV)
        if HOLD in controls and gate_dir:
            self._hold(gate_dir)
        responses = []
        for x, control in zip(inputs, controls, strict=True):
            if control == ERROR_RESPONSE or (control == HOLD and not gate_dir):
                error = pb_utils.TritonError(f"CONTROL={control}: error response, as requested")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            batch = np.full((x.shape[0], 1), rows, dtype=np.int32)
            outputs = [
                pb_utils.Tensor("OUTPUT", (x * 2).astype(np.float32)),
                pb_utils.Tensor("BATCH_SIZE", batch),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
