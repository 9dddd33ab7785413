"""The towers there are, and the one way to rebuild any of them from the identity stored with its vectors."""

from __future__ import annotations

from pathlib import Path

from encoder.errors import ConfigError
from encoder.factory import VideoEncoderSpec
from encoder.image_text import ImageTextTowerSpec
from encoder.tower import TowerSpec
from encoder.weights import checksum_mismatch

# identity["tower"] -> the spec class that reads the rest of that identity
TOWER_SPECS: dict[str, type] = {spec.tower: spec for spec in (VideoEncoderSpec, ImageTextTowerSpec)}


def spec_from_identity(identity: dict, cache_dir: Path) -> TowerSpec:
    """The exact tower recorded with a vector set; refuses weights whose checksum changed."""
    kind = TOWER_SPECS.get(identity.get("tower"))
    if kind is None:
        raise ConfigError(
            f"vectors made by an unknown tower {identity.get('tower')!r}; known: {', '.join(TOWER_SPECS)}"
        )
    spec = kind.from_identity(identity, Path(cache_dir))
    if spec.weights.sha256 != identity["sha256"]:
        raise checksum_mismatch(spec.weights.path, spec.weights.sha256, identity["sha256"])
    return spec
