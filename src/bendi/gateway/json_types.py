"""Wire types that validate JSON as JSON Schema reads it (strict, but 2.0 is the integer 2)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _integral(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer; pydantic's strict mode would refuse it. "2", true and
    # 2.5 stay what they are, so strict validation still refuses them.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# For `int` fields of models with `strict=True` (the wire models: no "2" for 2, no 0 for false).
# With limits, put them before it, `Annotated[int, Field(ge=1), INTEGRAL]`: after a validator,
# pydantic would write them into the JSON schema under its own names (`ge`) instead of `minimum`.
INTEGRAL = BeforeValidator(_integral)
JsonInt = Annotated[int, INTEGRAL]
