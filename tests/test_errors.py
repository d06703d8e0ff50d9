"""The one formatter of pydantic's errors that every layer's messages share."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from tapweight.errors import describe_validation_error


class _Inner(BaseModel):
    rate: float


class _Settings(BaseModel):
    steps: int
    inner: _Inner

    @field_validator("steps")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("steps must be >= 1; raise it")
        return value

    @model_validator(mode="after")
    def _whole(self) -> _Settings:
        if self.steps == 7:
            raise ValueError("seven steps is unlucky; pick another count")
        return self


def _error(**data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Settings.model_validate(data)
    return caught.value


def test_one_item_per_problem_led_by_its_field_path() -> None:
    error = _error(steps=0, inner={"rate": "fast"})
    assert describe_validation_error(error) == (
        "steps: steps must be >= 1; raise it; "
        "inner.rate: Input should be a valid number, unable to parse string as a number"
    )


def test_a_problem_of_the_whole_model_is_named_or_shown_alone() -> None:
    error = _error(steps=7, inner={"rate": 1.0})
    assert describe_validation_error(error) == "config: seven steps is unlucky; pick another count"
    assert describe_validation_error(error, unnamed=None) == (
        "seven steps is unlucky; pick another count"
    )


def test_separator() -> None:
    error = _error(steps=0, inner={})
    assert describe_validation_error(error, separator="\n").splitlines() == [
        "steps: steps must be >= 1; raise it",
        "inner.rate: Field required",
    ]
