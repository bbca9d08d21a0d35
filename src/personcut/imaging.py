"""Decoding photos safely and composing the results. NumPy and Pillow only (no torch)."""

from __future__ import annotations

import glob
import io
import os
import struct
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageFilter, ImageOps, UnidentifiedImageError

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray

DEFAULT_MAX_PIXELS = 100_000_000
"""Refuse larger images unless raised: a 100 kB PNG can decode to gigabytes (decompression bomb)."""


class ImageError(ValueError):
    """An input that is not a usable image; the message names the input and the reason.

    ``kind`` sorts the reasons for callers that map them to codes (the HTTP service):
    "unsupported" (not an image format we read), "corrupt" (truncated, empty, undecodable),
    "too_large" (over the pixel limit) or "missing".
    """

    def __init__(self, message: str, kind: str = "corrupt") -> None:
        super().__init__(message)
        self.kind = kind


def _name(source: ImageInput) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"<{type(source).__name__}>"


def load_image(source: ImageInput, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a path, bytes, PIL image or array as a fully decoded PIL image, upright as a viewer
    shows it (EXIF orientation applied), its ICC profile kept in ``info``. Never modifies
    ``source``."""
    name = _name(source)
    if isinstance(source, Image.Image):
        image = source.copy()
    elif isinstance(source, np.ndarray):
        return _from_array(source, name)
    else:
        if isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageError(f"{name}: empty input (0 bytes)")
            fp = io.BytesIO(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{path}: no such file", "missing")
            if path.stat().st_size == 0:
                raise ImageError(f"{path}: empty file (0 bytes)")
            fp = path.open("rb")
        try:
            image = _open(fp, name, max_pixels)
            w, h = image.size
            if max_pixels and w * h > max_pixels:
                raise ImageError(
                    f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, above the limit of "
                    f"{max_pixels / 1e6:.0f}; raise it with --max-pixels if this is intended",
                    "too_large",
                )
            image.load()
        except UnidentifiedImageError as exc:
            raise ImageError(f"{name}: not an image Pillow can read", "unsupported") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"{name}: cannot be decoded, truncated or corrupt ({exc})") from exc
        finally:
            if not isinstance(source, (bytes, bytearray)):
                fp.close()
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image)
    if icc and "icc_profile" not in upright.info:
        upright.info["icc_profile"] = icc
    return upright


_GUARD = threading.Lock()


def _open(fp, name: str, max_pixels: int | None) -> Image.Image:
    """Image.open with Pillow's bomb guard left on for the process (it protects the host
    application too). Only when the caller allows more pixels than the guard does is it lifted,
    for this one open, under a lock."""
    try:
        return Image.open(fp)
    except Image.DecompressionBombError as exc:
        guard = Image.MAX_IMAGE_PIXELS
        if max_pixels and guard and max_pixels <= 2 * guard:
            raise ImageError(
                f"{name}: {exc}; raise --max-pixels if this is intended", "too_large"
            ) from exc
        with _GUARD:
            Image.MAX_IMAGE_PIXELS = None
            try:
                fp.seek(0)
                return Image.open(fp)
            finally:
                Image.MAX_IMAGE_PIXELS = guard


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"{name}: array of shape {a.shape}; expected HxW, HxWx3 or HxWx4")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
        elif a.dtype == np.uint16:
            a = (a >> 8).astype(np.uint8)
        else:
            raise ImageError(f"{name}: array dtype {a.dtype}; use uint8, uint16 or float in [0, 1]")
    return Image.fromarray(np.ascontiguousarray(a))


def to_rgb(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 from any mode: grayscale, palette, 16-bit, CMYK, with or without alpha."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or a.max() > 255 else 255.0
        gray = np.clip(a / top * 255.0, 0, 255).round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        gray = (np.clip(np.asarray(image), 0, 1) * 255).round().astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "RGB":
        return np.asarray(image)  # convert("RGB") would copy it first: 30 ms more at 12 MP
    if image.mode == "P":
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def parse_color(text: str) -> tuple[int, int, int]:
    """A colour name or #hex as RGB."""
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError as exc:
        raise ValueError(f"bg {text!r} is not a colour name or #rrggbb") from exc


def compose(
    rgb: np.ndarray,
    alpha: np.ndarray,
    *,
    mask_only: bool = False,
    bg: str | tuple[int, int, int] | None = None,
    bg_image: ImageInput | None = None,
    blur: float = 0.0,
) -> Image.Image:
    """Build the output from the photo (HxWx3 uint8) and alpha (HxW float in [0, 1]).

    Default: RGBA cutout. ``mask_only``: 8-bit mask. ``bg``/``bg_image``/``blur``: the people over
    a colour, a picture scaled to cover, or the photo itself blurred; opaque RGB.
    """
    return array_image(
        compose_array(rgb, alpha, mask_only=mask_only, bg=bg, bg_image=bg_image, blur=blur)
    )


STRIP_PIXELS = 1 << 18
"""Full-size steps work in strips of about this many pixels: whole-photo temporaries cost more in
memory traffic than in arithmetic (a 12 MP float map is 48 MB)."""


def array_image(pixels: np.ndarray) -> Image.Image:
    """A composed uint8 array (HxW, HxWx3 or HxWx4) as a PIL image in "L", "RGB" or "RGBA"."""
    mode = "L" if pixels.ndim == 2 else ("RGBA" if pixels.shape[2] == 4 else "RGB")
    return Image.fromarray(pixels, mode)


def compose_array(
    rgb: np.ndarray,
    alpha: np.ndarray,
    *,
    mask_only: bool = False,
    bg: str | tuple[int, int, int] | None = None,
    bg_image: ImageInput | None = None,
    blur: float = 0.0,
) -> np.ndarray:
    """:func:`compose` as a uint8 array (HxW mask, HxWx4 RGBA or HxWx3 RGB), for callers that
    go on with arrays (video frames): a PIL round trip copies the image twice."""
    # One full-size temporary, changed in place: at 12 MP each new array costs more than the
    # arithmetic. +0.5 then truncation rounds.
    scaled = np.multiply(alpha, 255.0, dtype=np.float32)
    scaled += 0.5
    np.clip(scaled, 0.0, 255.0, out=scaled)
    a8 = scaled.astype(np.uint8)
    if mask_only:
        return a8
    h, w = a8.shape
    if bg is None and bg_image is None and not blur:
        # Pillow interleaves the bands in C (about a fifth of NumPy's strided copy), a strip at
        # a time so its temporaries stay in the cache (12 MP: 27 ms, not 130). Fully
        # transparent pixels then get RGB 0 through a 32-bit view, whole pixels in one pass:
        # invisible anyway, and the PNG is ~2x smaller and faster to encode.
        rgba = np.empty((h, w, 4), np.uint8)
        rows = max(1, STRIP_PIXELS // w)
        for top in range(0, h, rows):
            band = slice(top, top + rows)
            strip = Image.fromarray(np.ascontiguousarray(rgb[band]))
            strip.putalpha(Image.fromarray(a8[band]))
            rgba[band] = np.asarray(strip)
            rgba[band].view(np.uint32)[..., 0] *= a8[band] > 0
        return rgba
    if isinstance(bg_image, np.ndarray) and bg_image.shape == rgb.shape:
        back = bg_image  # already fitted (a clip's frames share one background)
    elif bg_image is not None:
        back = load_image(bg_image).convert("RGB")
        back = np.asarray(ImageOps.fit(back, (w, h), Image.LANCZOS))
    elif blur:
        back = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(blur)))
    else:
        color = parse_color(bg) if isinstance(bg, str) else tuple(bg)
        back = np.broadcast_to(np.array(color, np.uint8), rgb.shape)
    # (rgb * a + back * (255 - a) + 127) // 255 in 16-bit integers: exact rounding, and about
    # half the time of the same blend in float32.
    a16 = a8.astype(np.uint16)[..., None]
    out = rgb * a16
    out += back * (255 - a16)
    out += 127
    out //= 255
    return out.astype(np.uint8)


def crop_box(alpha: np.ndarray, margin: float = 0.05, level: float = 0.5):
    """(left, top, right, bottom) around the people plus ``margin`` of the box's size; None
    when no person was found."""
    ys, xs = np.nonzero(alpha >= level)
    if len(xs) == 0:
        return None
    h, w = alpha.shape
    left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = round((right - left) * margin), round((bottom - top) * margin)
    return max(0, left - mx), max(0, top - my), min(w, right + mx), min(h, bottom + my)


FORMATS = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}


def encode_pixels(pixels: np.ndarray, fmt: str, icc: bytes | None = None) -> bytes:
    """:func:`encode` for a composed uint8 array (HxW, HxWx3 or HxWx4): PNGs go to the fast
    writer straight from the array, without a PIL image's two full-size copies."""
    if fmt.upper() == "PNG" and pixels.ndim == 3:
        fast = _fast_png(pixels, icc)
        if fast is not None:
            return fast
    return encode(array_image(pixels), fmt, icc)  # encode drops the profile for masks


def encode(image: Image.Image, fmt: str, icc: bytes | None = None) -> bytes:
    """Image bytes in PNG, WEBP or JPEG. JPEG has no alpha: refuse rather than drop it."""
    fmt = fmt.upper()
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        raise ValueError("JPEG cannot hold transparency; compose over a background first")
    if fmt == "PNG" and image.mode in ("RGB", "RGBA"):
        fast = _fast_png(np.asarray(image), icc)
        if fast is not None:
            return fast
    options: dict = {"icc_profile": icc} if icc and image.mode != "L" else {}
    if fmt == "PNG":
        options["compress_level"] = 1  # ~5x faster than the default 6, files ~20% larger
    elif fmt == "WEBP":
        # Lossless keeps the alpha exact; method 0 / quality 0 is its fast setting (~3x faster
        # than the default at a similar size for cutouts).
        if image.mode == "RGBA":
            options.update(lossless=True, method=0, quality=0)
        else:
            options.update(quality=90)
    elif fmt == "JPEG":
        options["quality"] = 92
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _fast_png(pixels: np.ndarray, icc: bytes | None) -> bytes | None:
    """PNG through fpng (MIT), or None when it is not installed (Pillow then writes it).

    At 1 megapixel RGBA fpng takes about 10 ms where Pillow at its fastest useful setting
    (zlib level 1) takes 85-115 ms, for files about 11 % larger that decode to the same pixels
    (benchmarks/RESULTS.md). fpng writes no colour profile, so an ICC profile is added here as
    the iCCP chunk PNG defines for it, right after the header."""
    try:
        import fpng
    except ImportError:
        return None
    data = fpng.from_ndarray(np.ascontiguousarray(pixels))
    if icc:
        payload = b"ICC Profile\0\0" + zlib.compress(icc)  # name, NUL, method 0 (deflate)
        chunk = (
            struct.pack(">I", len(payload))
            + b"iCCP"
            + payload
            + struct.pack(">I", zlib.crc32(b"iCCP" + payload) & 0xFFFFFFFF)
        )
        end_of_header = 8 + 4 + 4 + 13 + 4  # signature, then IHDR: length, type, data, CRC
        data = data[:end_of_header] + chunk + data[end_of_header:]
    return data


def write_atomic(path: str | Path, data: bytes, clean: bool = True) -> None:
    """Write to a temp file beside ``path`` and rename: never a half-written output.

    ``clean``: first delete what a killed earlier write of ``path`` left beside it. That lists
    the folder; a caller writing many files into one folder does it once for all of them with
    :func:`remove_leftovers` and passes False."""
    path = Path(path)
    if clean:
        _remove_leftovers(path, ".part")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs should read like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_leftovers(path: Path, suffix: str) -> None:
    """Delete temporary files that a killed earlier write of ``path`` left beside it (their
    names are ``.NAME.<random><suffix>``); nothing else matches that pattern."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
        stale.unlink(missing_ok=True)


def remove_leftovers(paths: list[Path], suffix: str = ".part") -> None:
    """:func:`_remove_leftovers` for many outputs, listing each folder once (per output it was
    quadratic in the folder's size: 3 ms a file in a folder of 5,000)."""
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            # ".NAME.<random>.part": the output's name is everything before the last two dots.
            if entry.name.startswith(".") and entry.name.endswith(suffix):
                name = entry.name[1:].rsplit(".", 2)[0] if entry.name.count(".") >= 3 else None
                if name in names:
                    Path(entry.path).unlink(missing_ok=True)
