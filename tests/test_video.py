"""Clips: formats, audio, timing, steadiness and bad inputs, on short clips made here."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from conftest import scene_photo  # noqa: E402

from personcut import Segmenter  # noqa: E402
from personcut.cli import main  # noqa: E402
from personcut.video import OptionError, VideoError, flicker, remove_video  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def make_clip(
    path: Path,
    frames: int = 6,
    size=(96, 64),
    pan: int = 2,
    audio: bool = True,
    fps: int = 10,
    noise: float = 0.0,
    audio_codec: str = "aac",
    picture: Image.Image | None = None,
) -> Path:
    """The sample photo panned by ``pan`` pixels a frame (0: a still scene), with camera-like
    noise of this standard deviation, H.264, with a sine tone (AAC at 44.1 kHz, or Opus at 48 kHz
    with ``audio_codec="libopus"``, which needs a .mkv path) lasting as long as the frames."""
    rng = np.random.default_rng(0)
    picture = picture or Image.open(SAMPLE).convert("RGB")
    photo = picture.resize((size[0] + pan * frames, size[1] + pan * frames))
    a = np.asarray(photo)
    rate = 48000 if audio_codec == "libopus" else 44100
    per_frame = rate // fps
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        au = out.add_stream(audio_codec, rate=rate) if audio else None
        for i in range(frames):
            crop = a[i * pan : i * pan + size[1], i * pan : i * pan + size[0]].astype(np.float32)
            crop = np.clip(crop + rng.normal(0, noise, crop.shape), 0, 255).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(crop), "rgb24")):
                out.mux(p)
            if au is not None:
                t = (np.arange(per_frame) + i * per_frame) / rate
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                frame.sample_rate = rate
                for p in au.encode(frame):
                    out.mux(p)
        for stream in [v] + ([au] if au is not None else []):
            for p in stream.encode(None):
                out.mux(p)
    return path


def black_clip(
    path: Path,
    times: list[float],
    size=(64, 48),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
) -> Path:
    """Black frames shown at ``times`` (seconds; any spacing), for timing and container tests."""
    from fractions import Fraction

    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=10)
        v.width, v.height, v.pix_fmt = size[0], size[1], pix_fmt
        v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            v.set_display_rotation(rotation)
        for t in times:
            frame = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), "rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return {
            "codec": v.codec_context.name,
            "size": (v.width, v.height),
            "frames": sum(1 for _ in c.decode(video=0)),
            "audio": [a.codec_context.name for a in c.streams.audio],
        }


def vp9_alpha(path: Path) -> list[np.ndarray]:
    """Alpha planes of a VP9 WebM (FFmpeg's own VP9 decoder drops them; libvpx keeps them)."""
    out = []
    with av.open(str(path)) as c:
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        for packet in c.demux(c.streams.video[0]):  # the last, empty packet flushes
            out += [f.to_ndarray(format="rgba")[..., 3] for f in ctx.decode(packet)]
    return out


@pytest.fixture(scope="module")
def seg(tiny_onnx):
    return Segmenter(tiny_onnx)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.mark.parametrize(
    "name, options, codec, audio",
    [
        ("out.webm", {}, "vp9", ["opus"]),  # AAC cannot go into WebM: re-encoded
        ("out.mov", {}, "prores", ["aac"]),
        ("out.mp4", {"bg": "white"}, "h264", ["aac"]),
        ("out.mkv", {"blur": 5}, "h264", ["aac"]),
        ("out.gif", {"bg": "#00ff00"}, "gif", []),
        ("mask.webm", {"mask": True}, "vp9", ["opus"]),
    ],
)
def test_formats_keep_frames_size_and_audio(clip, seg, tmp_path, name, options, codec, audio):
    stats = remove_video(clip, tmp_path / name, segmenter=seg, progress=False, **options)
    info = probe(tmp_path / name)
    assert info == {"codec": codec, "size": (96, 64), "frames": 6, "audio": audio}
    assert stats["frames"] == 6 and stats["fps"] == 10.0
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_frames_run_one_pass_whatever_the_stills_default(clip, tiny_onnx, tmp_path):
    # a clip has a frame budget: no mirror pass, even from a Segmenter whose mode has one
    seg = Segmenter(tiny_onnx, quality="best")
    batches = []
    real = seg.logits
    seg.logits = lambda batch: batches.append(batch.shape) or real(batch)
    remove_video(clip, tmp_path / "o.webm", segmenter=seg, progress=False)
    assert len(batches) == 6 and {shape[0] for shape in batches} == {1}


def audio_seconds(path: Path) -> float:
    """The audio track's length as decoded: samples over the sample rate."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    return sum(f.samples for f in frames) / frames[0].sample_rate


@pytest.mark.parametrize(
    "source, name, options",
    [
        ("aac", "out.webm", {}),  # re-encoded to Opus
        ("aac", "out.mov", {}),  # copied
        ("aac", "out.mp4", {"bg": "white"}),
        ("aac", "out.mkv", {"bg": "white"}),
        ("opus", "out.mp4", {"bg": "white"}),  # re-encoded to AAC
        ("opus", "out.mov", {}),
        ("opus", "out.webm", {}),  # copied
    ],
)
def test_audio_keeps_its_length_in_every_container(clip, seg, tmp_path, source, name, options):
    """Nothing of the sound is lost (the tail of re-encoded audio was: AAC into .webm came out
    13 ms short, Opus into .mp4 38 ms); an AAC encoder may add its priming (1024 samples) and
    pad its last frame (up to 1024 more), no more."""
    src = clip if source == "aac" else make_clip(tmp_path / "opus.mkv", audio_codec="libopus")
    remove_video(src, tmp_path / name, segmenter=seg, progress=False, **options)
    before, after = audio_seconds(src), audio_seconds(tmp_path / name)
    assert after >= before - 0.002, f"{name}: {before - after:.4f} s of audio lost"
    assert after <= before + 2048 / 44100, f"{name}: {after - before:.4f} s of audio added"


def test_webm_and_mov_are_transparent(clip, seg, tmp_path):
    remove_video(clip, tmp_path / "a.webm", segmenter=seg, progress=False)
    alphas = vp9_alpha(tmp_path / "a.webm")
    assert len(alphas) == 6 and all(a.mean() < 250 for a in alphas)  # not opaque
    remove_video(clip, tmp_path / "a.mov", segmenter=seg, progress=False)
    with av.open(str(tmp_path / "a.mov")) as c:
        assert "a" in c.streams.video[0].codec_context.pix_fmt.removeprefix("yuv")[:2]


def test_png_frame_folder(clip, seg, tmp_path):
    remove_video(clip, tmp_path / "frames", segmenter=seg, progress=False)
    files = sorted((tmp_path / "frames").iterdir())
    assert len(files) == 6 and Image.open(files[0]).mode == "RGBA"


def test_smoothing_steadies_a_still_scene_in_the_written_frames(shipped, tmp_path):
    # One photo, not moving: the true mask never changes, so any change of alpha between the
    # written frames is flicker (here from the noise a camera adds to every frame).
    still = make_clip(
        tmp_path / "still.mp4", 8, (320, 240), 0, False, noise=12.0, picture=scene_photo()
    )
    measured = {}
    for smoothing in (0.0, 0.6):
        out = tmp_path / f"frames_{round(smoothing * 10)}"
        remove_video(still, out, segmenter=shipped, smoothing=smoothing, progress=False)
        alphas = [
            np.asarray(Image.open(f))[..., 3].astype(np.float32) / 255
            for f in sorted(out.glob("frame_*.png"))
        ]
        assert len(alphas) == 8 and alphas[0].std() > 0.1  # a person is there
        measured[smoothing] = flicker(alphas)
    assert measured[0.0] > 0.001  # the noise does move the raw matte
    assert measured[0.6] < 0.95 * measured[0.0], measured  # 15 % less here, deterministic


def test_bad_inputs_are_named_and_nothing_is_left(clip, seg, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match="notes.mp4.*not a video"):
        remove_video(text, tmp_path / "o.webm", segmenter=seg, progress=False)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:200])
    with pytest.raises(VideoError, match="cut.mp4"):
        remove_video(cut, tmp_path / "o.webm", segmenter=seg, progress=False)
    with pytest.raises(OptionError, match="cannot hold transparency"):
        remove_video(clip, tmp_path / "o.mp4", segmenter=seg, progress=False)
    existing = tmp_path / "keep.webm"
    existing.write_bytes(b"precious")
    with pytest.raises(VideoError, match="exists"):
        remove_video(clip, existing, segmenter=seg, progress=False)
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "keep.webm", "notes.mp4"]


def test_odd_sides_are_refused_for_420_codecs(seg, tmp_path):
    # Odd sides need a codec that can hold them: made as PNG frames in a MOV (ProRes 4444).
    path = black_clip(tmp_path / "odd.mov", [0, 0.2], (33, 21), "prores_ks", "yuv444p10le")
    with pytest.raises(VideoError, match="33x21 has an odd side"):
        remove_video(path, tmp_path / "o.webm", segmenter=seg, progress=False)
    stats = remove_video(path, tmp_path / "o.mov", segmenter=seg, progress=False)
    assert stats["frames"] == 2 and probe(tmp_path / "o.mov")["size"] == (33, 21)


def test_command_line_default_names(clip, tiny_onnx, tmp_path):
    import shutil

    src = tmp_path / "talk.mp4"
    shutil.copy(clip, src)
    assert main(["remove", "--model", str(tiny_onnx), "-q", str(src)]) == 0
    assert probe(tmp_path / "talk.cutout.webm")["frames"] == 6
    assert main(["remove", "--model", str(tiny_onnx), "-q", str(src), "--bg", "white"]) == 0
    assert probe(tmp_path / "talk.cutout.mp4")["codec"] == "h264"


def test_background_picture(clip, seg, tmp_path):
    back = tmp_path / "beach.png"
    Image.new("RGB", (40, 30), (0, 90, 200)).save(back)
    stats = remove_video(clip, tmp_path / "o.mp4", segmenter=seg, bg_image=back, progress=False)
    assert stats["frames"] == 6 and probe(tmp_path / "o.mp4")["codec"] == "h264"


def test_rotation_is_kept(seg, tmp_path):
    # A phone clip stored sideways with a display rotation: the output shows it the same way.
    path = black_clip(tmp_path / "phone.mp4", [0, 0.2, 0.4], rotation=90)
    for name in ("o.webm", "o.mov"):
        remove_video(path, tmp_path / name, segmenter=seg, progress=False)
        with av.open(str(tmp_path / name)) as c:
            assert next(c.decode(video=0)).rotation == 90, name


def test_variable_frame_rate_timing_is_kept(seg, tmp_path):
    times = [0.0, 0.1, 0.35, 0.4, 0.9]  # seconds: irregular gaps
    path = black_clip(tmp_path / "vfr.mkv", times)
    remove_video(path, tmp_path / "o.webm", segmenter=seg, progress=False)
    with av.open(str(tmp_path / "o.webm")) as c:
        got = [round(float(f.pts * f.time_base), 2) for f in c.decode(video=0)]
    assert got == times


def test_a_clip_with_no_frame_is_an_error_and_leaves_nothing(seg, tmp_path):
    path = black_clip(tmp_path / "h.mkv", [0, 0.2, 0.4])
    header_only = tmp_path / "header.mkv"
    header_only.write_bytes(path.read_bytes()[:600])  # the header and not one whole frame
    with pytest.raises(VideoError, match="header.mkv: no frame could be decoded"):
        remove_video(header_only, tmp_path / "o.webm", segmenter=seg, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.mkv", "header.mkv"]


def test_a_frame_folder_with_other_files_is_never_replaced(clip, seg, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(VideoError, match="holds other files"):
        remove_video(clip, folder, segmenter=seg, overwrite=True, progress=False)
    assert (folder / "notes.txt").read_text() == "mine"
    (folder / "notes.txt").unlink()
    remove_video(clip, folder, segmenter=seg, progress=False)  # empty: fine
    with pytest.raises(VideoError, match="holds frames"):
        remove_video(clip, folder, segmenter=seg, progress=False)
    remove_video(clip, folder, segmenter=seg, overwrite=True, progress=False)
    assert len(list(folder.iterdir())) == 6


def test_crop_is_refused_for_clips(clip, seg, tmp_path):
    from personcut.cutout import CutoutOptions

    with pytest.raises(OptionError, match="crop is for photos"):
        remove_video(clip, tmp_path / "o.webm", segmenter=seg, options=CutoutOptions(crop=True))
    assert not list(tmp_path.iterdir())
