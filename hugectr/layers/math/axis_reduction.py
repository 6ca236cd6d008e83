"""``AxisReduction``: what ReduceSum and ReduceMean share (one ``axis`` kept with size 1)."""

from __future__ import annotations

from ..._checks import require_int
from ..base import Layer, Shape


class AxisReduction(Layer):
    """Reduces over ``axis`` (0 <= axis < rank, rank <= 3), which stays with size 1; subclasses
    give ``forward``. Not registered itself: it is no ``Layer_t``."""

    def __init__(self, params):
        super().__init__(params)
        self.axis = require_int(self.describe(), "axis", params.axis)

    def output_shapes(self, in_shapes: list[Shape]) -> list[Shape]:
        (shape,) = in_shapes
        name = self.params.bottom_names[0]
        if len(shape) > 3:
            raise self.fail(f"bottom '{name}' has shape {shape}; {type(self).__name__} takes tensors of at most "
                            "3 dimensions")
        if not 0 <= self.axis < len(shape):
            raise self.fail(f"axis={self.axis} is out of range for bottom '{name}' {shape}; expected "
                            f"0 <= axis < {len(shape)}")
        out = list(shape)
        out[self.axis] = 1
        return [tuple(out)]

    def to_json(self) -> dict:
        return {"axis": self.axis}

    @classmethod
    def json_to_keywords(cls, fields: dict) -> dict:
        return {"axis": fields["axis"]}
