"""Judging a smoke-test answer against ``spec.smokeTest.expect`` (pure).

Triton answers ``{"outputs": [{"name", "shape", "datatype", "data"}]}``: ``output`` picks one by
name, ``shape`` must match exactly, ``min``/``max``/``equals`` apply to its ``data``. TorchServe
answers whatever the handler returns: ``output`` picks a key of a JSON object, and the rules apply
to that value (or to the whole answer). ``contains`` looks at the raw body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.smoke import SmokeExpectation


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


def _select(runtime: str, answer: Any, expect: SmokeExpectation) -> tuple[Any, str | None]:
    """(the value the rules apply to, an error) for the runtime's answer shape."""
    if expect.output is None:
        return answer, None
    if runtime == "triton":
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        for out in outputs or []:
            if isinstance(out, dict) and out.get("name") == expect.output:
                if expect.shape is not None and out.get("shape") != expect.shape:
                    shape = out.get("shape")
                    return None, f"output {expect.output} has shape {shape}, expected {expect.shape}"
                return out.get("data"), None
        names = [o.get("name") for o in outputs or [] if isinstance(o, dict)]
        return None, f"no output {expect.output!r} in the answer (outputs: {names})"
    if isinstance(answer, dict) and expect.output in answer:
        return answer[expect.output], None
    return None, f"no key {expect.output!r} in the answer"


def judge(runtime: str, expect: SmokeExpectation, status_code: int, body: str) -> Verdict:
    """Every rule that is set must hold; the first one that does not is the message."""
    if status_code != expect.status:
        return Verdict(False, f"HTTP {status_code}, expected {expect.status}")
    if expect.contains is not None and expect.contains not in body:
        return Verdict(False, f"the answer does not contain {expect.contains!r}")
    needs_json = any(v is not None for v in (expect.output, expect.min, expect.max, expect.equals))
    if not needs_json:
        return Verdict(True, f"HTTP {status_code} as expected")
    try:
        answer = json.loads(body)
    except ValueError:
        return Verdict(False, "the answer is not JSON")
    value, error = _select(runtime, answer, expect)
    if error is not None:
        return Verdict(False, error)
    if expect.equals is not None:
        wanted = json.loads(expect.equals)
        if value != wanted:
            return Verdict(False, f"value {json.dumps(value)[:200]} != expected {expect.equals[:200]}")
    numbers = list(_numbers(value))
    if (expect.min is not None or expect.max is not None) and not numbers:
        return Verdict(False, "no numbers in the answer to check against min/max")
    low = next((n for n in numbers if expect.min is not None and n < expect.min), None)
    if low is not None:
        return Verdict(False, f"value {low} < min {expect.min}")
    high = next((n for n in numbers if expect.max is not None and n > expect.max), None)
    if high is not None:
        return Verdict(False, f"value {high} > max {expect.max}")
    what = f"output {expect.output}" if expect.output else "the answer"
    return Verdict(True, f"HTTP {status_code}; {what} as expected ({len(numbers)} numbers checked)")
