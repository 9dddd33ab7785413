"""Changing a data dir's encoder without wiping its index: which vector sets an index run writes.

A run asked for a tower's active encoder writes that tower's active set and goes on building the new set
begun by an earlier run (so a plain `run.py index` or `watch` resumes a switch). A run asked for another
encoder keeps writing the active set with the active encoder, so new footage stays searchable, and builds
a new set with the asked one beside it (indexer/set_roles.py): new videos get both, indexed videos are
backfilled into the new set. Both sets hold vectors of the same clips, so the asked encoder must cut clips
as the active one does (`--rebuild` re-cuts them). When a new set covers every clip it becomes the active
one, in one transaction (`switch_complete`), unless the run was told to keep the active sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from encoder import runtime_cache
from encoder.offline import HubUnreachableError
from encoder.registry import spec_from_identity
from encoder.tower import TowerSpec
from indexer import store
from indexer.catalog import Catalog, CatalogError, IncompleteSet, VectorSetInfo, identity_key
from indexer.lock import IndexLock
from indexer.records import IMAGE_SET, VIDEO_SET, ClipSampling
from indexer.set_roles import new_name, parse_set_name
from indexer.settings import DataDir
from indexer.towers import Towers


class ClipsDiffer(CatalogError):
    def __init__(self, active: ClipSampling, asked: ClipSampling):
        super().__init__(
            f"the asked video encoder cuts clips differently ({asked.to_dict()}) from the data dir's "
            f"({active.to_dict()}); a second vector set is built over the indexed clips, so leave the "
            "sampling flags out (or give the recorded values), or re-cut every clip with `--rebuild`"
        )


@dataclass(frozen=True)
class RunSets:
    towers: Towers  # the active towers, plus `building`: the towers of the new sets
    sets: dict[str, VectorSetInfo]  # by set name: where each tower's vectors are stored

    def new_sets(self) -> list[str]:
        return [name for name in self.sets if parse_set_name(name).role == "new"]


def plan_sets(catalog: Catalog, asked: Towers, weights_dir: Path) -> RunSets:
    """The towers and vector sets a run asked for `asked` writes (see the module docstring)."""
    specs, identities = asked.specs(), asked.identities()
    active_specs: dict[str, TowerSpec] = {}
    building: dict[str, TowerSpec] = {}
    sets: dict[str, VectorSetInfo] = {}
    for tower, identity in identities.items():
        active = catalog.vector_set(tower)
        if active is None:  # a new data dir, or a tower added to it: its first set is the active one
            sets[tower] = catalog.ensure_vector_set(tower, identity, specs[tower].dim)
            active_specs[tower] = specs[tower]
            continue
        sets[tower] = active
        if active.key == identity_key(identity):
            active_specs[tower] = specs[tower]
            new = catalog.vector_set(new_name(tower))
            if new is not None:  # a switch begun by an earlier run
                sets[new.name], building[new.name] = new, _recorded_spec(new, weights_dir)
            continue
        if tower == VIDEO_SET:
            _check_same_clips(active, asked.sampling)
        active_specs[tower] = _recorded_spec(active, weights_dir)
        new = catalog.start_new_set(tower, identity, specs[tower].dim)
        sets[new.name], building[new.name] = new, specs[tower]
    towers = Towers(
        active_specs[VIDEO_SET],
        active_specs.get(IMAGE_SET),
        ClipSampling.from_dict(sets[VIDEO_SET].identity["sampling"]),
        asked.device,
        asked.precision,
        asked.backend,
        asked.runtime_dir,
        building,
        asked.cache,
    )
    return RunSets(towers, sets)


def switch_complete(catalog: Catalog, run: RunSets) -> list[str]:
    """Make each new set that covers every clip its tower's active set (one transaction each); the towers
    switched. A set still lacking clips (a cancelled run, footage that failed to decode) waits."""
    switched = []
    for name in run.new_sets():
        vset = run.sets[name]
        if catalog.clips_without_vector(vset.id) == 0:
            catalog.activate_new_set(parse_set_name(name).tower)
            switched.append(parse_set_name(name).tower)
    return switched


def _recorded_spec(vset: VectorSetInfo, weights_dir: Path) -> TowerSpec:
    try:
        return spec_from_identity(vset.identity, weights_dir)
    except HubUnreachableError as offline:
        raise offline.for_recorded_vectors() from None


def _check_same_clips(active: VectorSetInfo, asked: ClipSampling) -> None:
    recorded = ClipSampling.from_dict(active.identity["sampling"])
    if recorded.to_dict() != asked.to_dict():  # the stored form: an unset stride is the window span
        raise ClipsDiffer(recorded, asked)


@dataclass(frozen=True)
class SwitchReport:
    activated: tuple[str, ...]  # towers whose new set became active
    dropped: tuple[str, ...]  # sets deleted with their vectors
    vectors_dropped: int

    def to_json(self) -> dict:
        return {
            "activated": list(self.activated),
            "dropped": list(self.dropped),
            "vectors_dropped": self.vectors_dropped,
        }


def activate(data: DataDir, drop_old: bool = False, memory_budget: int = 4 << 30) -> SwitchReport:
    """`run.py activate`: every tower's new set becomes active now (each in one transaction; refused while
    one lacks clips), its index file is written, and with `drop_old` the replaced sets are deleted."""
    with IndexLock(data.lock_file), _opened(data) as catalog:
        towers = [parse_set_name(v.name).tower for v in catalog.vector_sets() if parse_set_name(v.name).role == "new"]
        if not towers:
            raise CatalogError(f"no new vector set is being built in {data.root}: `run.py status` shows the sets")
        for vset in catalog.vector_sets():  # all or none: a tower switched alone would leave the other behind
            if parse_set_name(vset.name).role == "new" and (lacking := catalog.clips_without_vector(vset.id)):
                raise IncompleteSet(parse_set_name(vset.name).tower, lacking, catalog.stats()["clips"])
        for tower in towers:
            vset = catalog.activate_new_set(tower)
            store.open_index(catalog, vset, data.index_dir, memory_budget).save(data.index_dir)
            store.remove_stale(data.index_dir, vset)
        dropped = _drop(catalog, "old", data) if drop_old else ((), 0)
    return SwitchReport(tuple(towers), *dropped)


def drop_sets(data: DataDir, which: str) -> SwitchReport:
    """`run.py drop-set old|new`: delete the replaced sets, or the one being built, with their vectors."""
    with IndexLock(data.lock_file), _opened(data) as catalog:
        names, count = _drop(catalog, which, data)
    return SwitchReport((), names, count)


def _drop(catalog: Catalog, role: str, data: DataDir) -> tuple[tuple[str, ...], int]:
    """Delete the sets of `role` with their vectors, then the converted encoders no remaining set uses."""
    names = tuple(v.name for v in catalog.vector_sets() if parse_set_name(v.name).role == role)
    count = catalog.drop_sets(list(names)) if names else 0
    runtime_cache.sweep(data.runtime_dir, [v.identity for v in catalog.vector_sets()])
    return names, count


@contextmanager
def _opened(data: DataDir) -> Iterator[Catalog]:
    if not data.has_catalog:
        raise CatalogError(f"no index at {data.root}: run `python run.py index PATH` first")
    catalog = Catalog(data.catalog).open()
    try:
        yield catalog
    finally:
        catalog.close()
