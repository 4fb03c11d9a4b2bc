"""The two kinds of model every service's contract is made of.

What we send is :class:`Strict` (an unknown field is our bug, refused before it leaves). What we read is
:class:`Tolerant`: fields the vendor adds are kept, and an id sent as a number where the documents show a string (or
the other way round) is read as the same id, since vendors differ in that and it means nothing to us.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


__all__ = ["Strict", "Tolerant"]
