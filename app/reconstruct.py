"""The reconstruction view: what the pretrained model fills in for an indexed clip.

One picture, a column per time slice and three rows: the clip's frames as the encoder sees them, the
masked input (hidden patches greyed out), and the model's reconstruction with the visible patches pasted
back. `run.py reconstruct` writes it as a PNG; the web UI shows the same picture for a result card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.pretrain_errors import NoDecoderError, PretrainError
from indexer.settings import DataDir

COLUMNS = 4  # time slices shown
MIN_TILE = 160  # small models' inputs (64 px for vit-tiny) are enlarged to at least this, pixel for pixel
GAP = 4  # pixels between tiles
LABEL_WIDTH = 110  # the row names' column
BACKGROUND = 255
MASK_GREY = 128
ROWS = ("original", "masked input", "reconstruction")


@dataclass(frozen=True)
class GridLayout:
    """Where every tile of the picture lies."""

    size: int  # the model's input side, pixels
    columns: int

    @property
    def scale(self) -> int:
        return max(1, -(-MIN_TILE // self.size))

    @property
    def tile(self) -> int:
        return self.size * self.scale

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the whole picture."""
        rows = len(ROWS)
        return rows * self.tile + (rows + 1) * GAP, LABEL_WIDTH + self.columns * (self.tile + GAP) + GAP

    def origin(self, row: int, column: int) -> tuple[int, int]:
        return GAP + row * (self.tile + GAP), LABEL_WIDTH + GAP + column * (self.tile + GAP)


def _how_to_make_one(data: DataDir) -> str:
    return (
        f"make one with `python run.py pretrain --data {data.root} --minutes 10 --objective mae` (it trains the "
        "decoder this picture needs)"
    )


def no_checkpoint_message(data: DataDir) -> str:
    return f"no pretraining checkpoint with a decoder in {data.root / 'pretrain'}: {_how_to_make_one(data)}"


def untrained_decoder_message(data: DataDir) -> str:
    return (
        f"the pretraining checkpoint in {data.root / 'pretrain'} was trained with --objective nce, which does not "
        f"train the decoder: its picture would show nothing learned; {_how_to_make_one(data)}"
    )


def reconstruct_clip(
    data: DataDir, clip_id: int, out: Path, mask: str = "tube", ratio: float = 0.9, seed: int = 0, device: str = "auto"
) -> Path:
    """Write the picture for `clip_id` to `out` (a .png, atomically); returns `out`."""
    from PIL import Image

    from indexer.atomic import atomic_write

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise PretrainError(f"{out}: the picture is a PNG file, name it NAME.png")
    picture = reconstruction_picture(data, clip_id, mask, ratio, seed, device)
    with atomic_write(out, ".png") as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return out


def reconstruction_picture(
    data: DataDir, clip_id: int, mask: str = "tube", ratio: float = 0.9, seed: int = 0, device: str = "auto"
) -> np.ndarray:
    """uint8 (H, W, 3): the grid for one indexed clip, from the data dir's pretraining checkpoint."""
    import torch

    from encoder.masking import MaskSpec, make_masks
    from encoder.preprocess import VideoPreprocess
    from encoder.pretrain_checkpoint import load_pretrain_state
    from encoder.reconstruction import reconstruct_pixels
    from encoder.runtime import pick_runtime
    from indexer.pretrain_files import checkpoint_path, load_checkpoint

    if not 0 < ratio < 1:
        raise PretrainError(f"--mask-ratio must be between 0 and 1, got {ratio}")
    saved = load_checkpoint(checkpoint_path(data))
    if saved is None:
        raise NoDecoderError(no_checkpoint_message(data))
    model, had_decoder = load_pretrain_state(saved.model, saved.run["variant"])
    if not had_decoder:
        raise NoDecoderError(no_checkpoint_message(data))
    if saved.run.get("objective") == "nce":
        raise NoDecoderError(untrained_decoder_message(data))
    pre = VideoPreprocess.from_dict(saved.run["preprocess"])
    frames = clip_frames(data, clip_id, pre)  # uint8 (T, S, S, 3)
    runtime = pick_runtime(device, "fp32", "torch")
    model = model.to(runtime.device).eval()
    cfg = model.cfg.encoder
    grid = cfg.grid
    hidden, decoded = make_masks(MaskSpec(mask, ratio, 0.0), grid, 1, torch.Generator().manual_seed(seed))
    clips = torch.from_numpy(frames)[None].permute(0, 4, 1, 2, 3).float().div(255).to(runtime.device)
    with torch.inference_mode():
        rebuilt = reconstruct_pixels(model, clips, (hidden.to(runtime.device), decoded.to(runtime.device)))
    rebuilt = rebuilt[0].permute(1, 2, 3, 0).clamp(0, 1).mul(255).round().byte().cpu().numpy()
    pixel_mask = hidden_pixels(hidden[0].numpy(), grid, cfg.tubelet_size, cfg.patch_size)
    masked = np.where(pixel_mask[..., None], np.uint8(MASK_GREY), frames)
    return compose(frames, masked, rebuilt)


def clip_frames(data: DataDir, clip_id: int, pre) -> np.ndarray:
    """The clip's frames as indexing decodes them for the encoder: uint8 (T, S, S, 3)."""
    from indexer.catalog import Catalog
    from indexer.decode import ClipDecoder, ProbeError, probe
    from indexer.records import ClipSampling

    if not data.has_catalog:
        raise PretrainError(f"nothing is indexed in {data.root}")
    catalog = Catalog(data.catalog).open()
    try:
        row = catalog.clip_rows([clip_id]).get(clip_id)
    finally:
        catalog.close()
    if row is None:
        raise PretrainError(f"no clip {clip_id} in the catalog of {data.root}")
    path = Path(row.path)
    try:
        info = probe(path)
        sampling = ClipSampling(pre.window_frames, pre.frame_interval)
        decoder = ClipDecoder(path, info, sampling, pre.size, time_range=(row.start, None), max_windows=1)
        clip = next(iter(decoder.clips()), None)
    except ProbeError as exc:
        raise PretrainError(f"{path}: {exc}") from exc
    if clip is None:
        raise PretrainError(f"{path}: no frames at {row.start:.2f} s (clip {clip_id})")
    return clip.frames


def hidden_pixels(hidden: np.ndarray, grid: tuple[int, int, int], tubelet: int, patch: int) -> np.ndarray:
    """bool (T, S, S): the pixels of every token hidden from the encoder."""
    tokens = hidden.reshape(grid)
    return tokens.repeat(tubelet, axis=0).repeat(patch, axis=1).repeat(patch, axis=2)


def shown_frames(frames: int, columns: int = COLUMNS) -> list[int]:
    """Frame indices of the columns: evenly over the clip."""
    return np.linspace(0, frames - 1, min(columns, frames)).round().astype(int).tolist()


def compose(original: np.ndarray, masked: np.ndarray, rebuilt: np.ndarray) -> np.ndarray:
    """The grid picture from three uint8 (T, S, S, 3) stacks."""
    picks = shown_frames(len(original))
    layout = GridLayout(original.shape[1], len(picks))
    picture = np.full((*layout.shape, 3), BACKGROUND, dtype=np.uint8)
    for row, stack in enumerate((original, masked, rebuilt)):
        for column, index in enumerate(picks):
            top, left = layout.origin(row, column)
            tile = stack[index].repeat(layout.scale, axis=0).repeat(layout.scale, axis=1)
            picture[top : top + layout.tile, left : left + layout.tile] = tile
    return label_rows(picture, layout)


def label_rows(picture: np.ndarray, layout: GridLayout) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    for row, name in enumerate(ROWS):
        top, _ = layout.origin(row, 0)
        draw.text((GAP, top + layout.tile // 2 - 6), name, fill=(0, 0, 0))
    return np.asarray(image)
