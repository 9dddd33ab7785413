"""What every tower is, whatever its architecture: the one contract the indexer and the search service use.

A *spec* names a tower exactly (architecture, checksummed weights, preprocessing) and loads nothing;
its `load()` gives the *tower*, which embeds clips. VideoMAE v2 (`encoder.factory`) and open_clip
(`encoder.image_text`) implement both; `encoder.registry.spec_from_identity` rebuilds either from the identity
stored with its vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from encoder.weights import ResolvedWeights


class Preprocessing(Protocol):
    """How pixels reach a tower (`VideoPreprocess`, `ImagePreprocess`): at least a square input size."""

    @property
    def size(self) -> int: ...

    def to_dict(self) -> dict: ...


class TowerSpec(Protocol):
    """A resolved tower, nothing loaded: everything that determines its vectors."""

    @property
    def tower(self) -> str: ...  # the architecture's name as identities record it: "videomae2", "open_clip"

    @property
    def weights(self) -> ResolvedWeights: ...

    @property
    def dim(self) -> int: ...

    @property
    def preprocess(self) -> Preprocessing: ...

    def identity(self) -> dict: ...

    def load(
        self, device: str = "auto", precision: str = "auto", backend: str = "auto", cache_dir: Path | None = None
    ) -> Tower:
        """The tower on the runtime `encoder.runtime.pick_runtime` picks; a converted one cached in `cache_dir`."""
        ...


class Tower(Protocol):
    """A loaded tower: uint8 clips (B, T, S, S, 3) in, float32 (B, dim) unit vectors out."""

    @property
    def spec(self) -> TowerSpec: ...

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def preprocess(self) -> Preprocessing: ...

    def identity(self) -> dict: ...

    def embed(self, clips: np.ndarray) -> np.ndarray: ...


class TextTower(Tower, Protocol):
    """A tower whose space text and single images also map into (open_clip)."""

    def encode_text(self, texts: list[str]) -> np.ndarray: ...

    def encode_images(self, images: np.ndarray) -> np.ndarray: ...


class FromSpec:
    """The `Tower` attributes a loaded tower takes from the spec it was loaded from (both towers use this)."""

    spec: TowerSpec

    @property
    def name(self) -> str:
        return self.spec.tower

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def preprocess(self) -> Preprocessing:
        return self.spec.preprocess

    def identity(self) -> dict:
        return self.spec.identity()
