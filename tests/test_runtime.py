"""The CPU inference runtime (OpenVINO): faithful to PyTorch fp32, cached per encoder identity, chosen by
--runtime, shown by status, and invisible to the vector sets' identity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import ENCODER, cli_in_process, index, search

from app.demo import synthesize_video
from encoder.factory import resolve_video_encoder
from encoder.image_text import resolve_image_text_tower
from encoder.runtime import pick_runtime

pytest.importorskip("openvino")

from encoder.openvino_runtime import MIN_COSINE, row_cosines

PRECISIONS = ("fp32", "bf16")  # bf16 runs natively or emulated: the vectors must hold either way


def _clips(size: int, batch: int = 3, frames: int = 16) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (batch, frames, size, size, 3), dtype=np.uint8)


def _assert_faithful(reference: np.ndarray, converted: np.ndarray) -> None:
    cosines = row_cosines(reference, converted)
    assert cosines.min() >= MIN_COSINE, cosines


def _video_fidelity(variant: str, tmp_path, precision: str) -> None:
    spec = resolve_video_encoder(variant, "random", tmp_path / "weights")
    clips = _clips(spec.preprocess.size, batch=2, frames=spec.preprocess.window_frames)
    reference = spec.load("cpu", "fp32", "torch").embed(clips)
    converted = spec.load("cpu", precision, "openvino", tmp_path / "runtime")
    assert converted.runtime.backend == "openvino"
    _assert_faithful(reference, converted.embed(clips))


def _image_text_fidelity(model: str, tmp_path, precision: str) -> None:
    spec = resolve_image_text_tower(model, "random", tmp_path / "weights")
    clips = _clips(spec.size, batch=2, frames=8)
    texts = ["a person walking a dog", "a red car driving at night", "an empty corridor"]
    torch_tower = spec.load("cpu", "fp32", "torch")
    converted = spec.load("cpu", precision, "openvino", tmp_path / "runtime")
    assert converted.runtime.backend == "openvino"
    _assert_faithful(torch_tower.embed(clips), converted.embed(clips))
    _assert_faithful(torch_tower.encode_text(texts), converted.encode_text(texts))  # batch > the traced 1


@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_tiny_towers_match_pytorch_fp32(tmp_path, precision):
    _video_fidelity("vit-tiny", tmp_path, precision)
    _image_text_fidelity("tubelet-tiny-clip", tmp_path, precision)


@pytest.mark.slow
def test_real_size_video_tower_matches_pytorch_fp32(tmp_path):
    _video_fidelity("vit-s", tmp_path, "bf16")


@pytest.mark.slow
def test_real_size_image_text_tower_matches_pytorch_fp32(tmp_path):
    _image_text_fidelity("ViT-B-32", tmp_path, "bf16")


@pytest.mark.slow
def test_converted_video_tower_takes_decoded_uint8_clips_at_any_size(tmp_path):
    """The hot path: decoded uint8 clips go straight into the converted graph (layout, cast and normalisation
    inside it, no float pass in torch); a clip of another size is resized first and stays faithful."""
    import openvino as ov

    spec = resolve_video_encoder("vit-tiny", "random", tmp_path / "weights")
    converted = spec.load("cpu", "fp32", "openvino", tmp_path / "runtime")
    assert converted.part.compiled.input(0).get_element_type() == ov.Type.u8
    assert converted.part.compiled.input(0).get_partial_shape().to_string() == "[?,16,64,64,3]"  # (B, T, S, S, 3)
    reference = spec.load("cpu", "fp32", "torch")
    for size in (64, 80):
        clips = _clips(size, batch=2)
        _assert_faithful(reference.embed(clips), converted.embed(clips))
    with pytest.raises(ValueError, match="expected clips shaped"):
        converted.embed(_clips(64)[0])


def test_auto_is_openvino_on_cpu_and_explicit_choices_are_checked(monkeypatch):
    monkeypatch.delenv("TUBELET_RUNTIME")
    assert pick_runtime("cpu", "fp32").backend == "openvino"
    assert pick_runtime("cpu", "fp32", "torch").backend == "torch"
    monkeypatch.setenv("TUBELET_RUNTIME", "torch")
    assert pick_runtime("cpu", "fp32").backend == "torch"
    from encoder.errors import ConfigError

    with pytest.raises(ConfigError, match=r"openvino.*fp16"):
        pick_runtime("cpu", "fp16", "openvino")
    with pytest.raises(ConfigError, match="runtime must be one of"):
        pick_runtime("cpu", "fp32", "tensorrt")


@pytest.mark.slow
def test_cache_is_reused_and_a_damaged_one_rebuilt(tmp_path, caplog):
    spec = resolve_video_encoder("vit-tiny", "random", tmp_path / "weights")
    cache = tmp_path / "runtime"
    clips = _clips(spec.preprocess.size, batch=2)
    first = spec.load("cpu", "fp32", "openvino", cache).embed(clips)
    assert "converting the videomae2 video encoder" in caplog.text
    (xml,) = cache.glob("*.xml")
    manifest = json.loads(xml.with_suffix(".json").read_text())
    assert manifest["key"]["tower"] == json.loads(json.dumps(spec.identity()))
    caplog.clear()
    spec.load("cpu", "fp32", "openvino", cache)
    assert "converting" not in caplog.text  # the cached model is used
    weights = xml.with_suffix(".bin")
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # a flipped byte: a wrong model if it were used
    weights.write_bytes(bytes(damaged))
    again = spec.load("cpu", "fp32", "openvino", cache).embed(clips)
    assert "does not match its manifest" in caplog.text and "converting" in caplog.text
    np.testing.assert_allclose(again, first, atol=1e-6)


@pytest.mark.slow
def test_unfaithful_conversion_falls_back_only_when_automatic(tmp_path, monkeypatch, caplog):
    import encoder.openvino_runtime as ovr
    from encoder.openvino_runtime import UnfaithfulRuntime

    spec = resolve_video_encoder("vit-tiny", "random", tmp_path / "weights")
    monkeypatch.setattr(ovr, "MIN_COSINE", 1.5)  # no conversion can reach it
    with pytest.raises(UnfaithfulRuntime):
        spec.load("cpu", "fp32", "openvino", tmp_path / "runtime")
    monkeypatch.delenv("TUBELET_RUNTIME")
    tower = spec.load("cpu", "fp32", "auto", tmp_path / "runtime")
    assert tower.runtime.backend == "torch" and "running it in PyTorch" in caplog.text


@pytest.mark.slow
def test_indexed_with_openvino_searched_with_torch_and_status_says_what_ran(tmp_path):
    videos = tmp_path / "videos"
    synthesize_video(videos / "a.mp4", seconds=4, seed=1)
    synthesize_video(videos / "b.mp4", seconds=4, seed=2)
    data = tmp_path / "data"
    json.loads(cli_in_process("index", "--data", data, videos, *ENCODER, "--runtime", "openvino", "--json").stdout)
    status = json.loads(cli_in_process("status", "--data", data, "--json").stdout)
    for tower in status["towers"].values():
        assert tower["indexed_with"].startswith("openvino cpu")
    assert any(c.startswith("openvino text") for c in status["towers"]["image"]["converted"])
    assert len(list((data / "runtime").glob("*.xml"))) == 3  # video, image, text
    query = ["--text", "a moving shape"]
    by_torch = search(data, *query, "--runtime", "torch")
    by_openvino = search(data, *query, "--runtime", "openvino")
    assert [h["clip_id"] for h in by_torch] == [h["clip_id"] for h in by_openvino]
    np.testing.assert_allclose([h["score"] for h in by_torch], [h["score"] for h in by_openvino], atol=2e-3)
    index(data, videos)  # a torch run adds to the same vector sets: the runtime is not their identity


def test_the_sweep_removes_converted_encoders_of_towers_no_set_has_and_nothing_else(tmp_path):
    from encoder.runtime_cache import sweep

    kept_identity, gone_identity = {"tower": "videomae2", "sha256": "a"}, {"tower": "videomae2", "sha256": "b"}
    for digest, tower in (("kept1", kept_identity), ("kept2", kept_identity), ("gone", gone_identity)):
        (tmp_path / f"{digest}.json").write_text(json.dumps({"key": {"tower": tower, "part": "video"}}))
        (tmp_path / f"{digest}.xml").write_text("<xml/>")
        (tmp_path / f"{digest}.bin").write_bytes(b"0")
    (tmp_path / "damaged.json").write_text("{not json")
    (tmp_path / "foreign.json").write_text(json.dumps({"something": "else"}))
    removed = sweep(tmp_path, [{**kept_identity, "sampling": {"num_frames": 16}}])  # a set's identity
    assert sorted(p.name for p in removed) == ["gone.bin", "gone.json", "gone.xml"]
    left = sorted(p.name for p in tmp_path.iterdir())
    kept = [f"kept{i}.{ext}" for i in (1, 2) for ext in ("json", "xml", "bin")]
    assert left == sorted(["damaged.json", "foreign.json", *kept])


@pytest.mark.slow
def test_converted_encoders_live_as_long_as_a_vector_set_of_their_tower(tmp_path):
    """A switch keeps the old set, so its converted encoders stay (it can be switched back); `drop-set old`
    and `--rebuild` with another encoder remove those of the towers no set has any more."""
    videos = tmp_path / "videos"
    synthesize_video(videos / "a.mp4", seconds=2, seed=1)
    data, runtime = tmp_path / "data", tmp_path / "data" / "runtime"
    other = [a if a != "random" else "random:1" for a in ENCODER]

    def converted() -> set[str]:
        return {json.dumps(json.loads(p.read_text())["key"]["tower"], sort_keys=True) for p in runtime.glob("*.json")}

    def index_with(encoder: list, *extra) -> None:
        cli_in_process("index", "--data", data, videos, *encoder, "--runtime", "openvino", "--json", *extra)

    index_with(ENCODER)
    first = converted()
    assert len(first) == 2 and len(list(runtime.glob("*.json"))) == 3  # two towers; video, image, text
    index_with(other)  # a new set for each tower, switched to at once: the old ones are kept
    assert len(converted()) == 4 and converted() > first and len(list(runtime.glob("*.xml"))) == 6
    cli_in_process("drop-set", "--data", data, "old")
    second = converted()
    assert len(second) == 2 and not second & first and len(list(runtime.glob("*.xml"))) == 3
    index_with(ENCODER, "--rebuild")
    assert converted() == first and len(list(runtime.iterdir())) == 9  # 3 manifests, 3 models, 3 weights files
