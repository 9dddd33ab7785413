"""The roles a tower's vector sets play, named in their catalog rows (no schema change needed).

Every tower ("video", "image") has one *active* set, named after the tower: the only one searches and
`status --check` read. Indexing with another encoder builds a *new* set beside it (`video.new`), over the
same clips; when the new set covers every clip it takes the tower's name in one transaction and the
replaced set is kept as an *old* one (`video.old.<id>`) until it is dropped on request (`run.py drop-set
old`) or reused (indexing with that encoder again revives it, needing only the clips added since).
A search therefore never sees two sets of one tower: it reads the set named after the tower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["active", "new", "old"]
ROLES: tuple[Role, ...] = ("active", "new", "old")


@dataclass(frozen=True)
class SetName:
    tower: str  # "video" | "image"
    role: Role
    number: int | None = None  # an old set's own id, which keeps several old sets of a tower apart

    def __str__(self) -> str:
        if self.role == "active":
            return self.tower
        return f"{self.tower}.{self.role}" + (f".{self.number}" if self.number is not None else "")


def active_name(tower: str) -> str:
    return str(SetName(tower, "active"))


def new_name(tower: str) -> str:
    return str(SetName(tower, "new"))


def old_name(tower: str, set_id: int) -> str:
    return str(SetName(tower, "old", set_id))


def parse_set_name(name: str) -> SetName:
    """The tower and role a catalog set name encodes; a name of none of the three forms is an error."""
    tower, _, rest = name.partition(".")
    role, _, number = rest.partition(".")
    if not rest:
        return SetName(tower, "active")
    if role == "new" and not number:
        return SetName(tower, "new")
    if role == "old" and number.isdigit():
        return SetName(tower, "old", int(number))
    raise ValueError(f"not a vector set name: {name!r}")
