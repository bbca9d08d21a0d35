"""Photos in and out: decoding safely (pixel limits, EXIF orientation, ICC profiles, every mode)
and encoding PNG, WebP and JPEG. NumPy and Pillow only (no torch)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray

INPUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif")
"""Photo files looked for in folders."""

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
    ``source``. Anything over ``max_pixels`` is refused before it is decoded or copied, and
    every way a file can be broken (a corrupt EXIF block included) is an ImageError naming it."""
    name = _name(source)
    if isinstance(source, (Image.Image, np.ndarray)):
        size = source.size if isinstance(source, Image.Image) else source.shape[1::-1]
        _check_pixels(name, *size[:2], max_pixels)
        if isinstance(source, np.ndarray):
            return _from_array(source, name)
        return _upright(source.copy(), name)
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
        _check_pixels(name, *image.size, max_pixels)
        image.load()
        return _upright(image, name)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image Pillow can read", "unsupported") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow's plugins raise many kinds for bad files
        raise ImageError(f"{name}: cannot be decoded, truncated or corrupt ({exc})") from exc
    finally:
        if not isinstance(source, (bytes, bytearray)):
            fp.close()


def _check_pixels(name: str, w: int, h: int, max_pixels: int | None) -> None:
    if max_pixels and w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} is {w * h / 1e6:.3g} megapixels, above the limit of "
            f"{max_pixels / 1e6:.3g}; raise it with --max-pixels if this is intended",
            "too_large",
        )


def _upright(image: Image.Image, name: str) -> Image.Image:
    """EXIF orientation applied (a corrupt EXIF block: the photo as stored, it is still fine),
    the ICC profile kept or, for a CMYK or gray profile, converted through."""
    icc = image.info.get("icc_profile")
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - e.g. "not a TIFF file" from a broken EXIF block
        upright = image
    if icc and profile_space(icc) != "RGB ":
        # Outputs are RGB(A) or a mask: a CMYK or gray profile cannot describe them. Convert
        # through it to sRGB where Little CMS can, and keep no profile either way.
        return _to_srgb(upright, icc)
    if icc and "icc_profile" not in upright.info:
        upright.info["icc_profile"] = icc
    return upright


def profile_space(icc: bytes) -> str:
    """The colour space an ICC profile describes ("RGB ", "GRAY", "CMYK", ...; "" if unreadable):
    the four bytes at offset 16 of its header."""
    return icc[16:20].decode("latin-1") if len(icc) >= 20 else ""


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    from PIL import ImageCms

    image.info.pop("icc_profile", None)
    if image.mode not in ("CMYK", "L"):
        return image  # a profile that does not fit the pixels: dropped, pixels read as they are
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unreadable profile: the plain conversion in to_rgb


def _open(fp, name: str, max_pixels: int | None) -> Image.Image:
    """Image.open with Pillow's bomb guard left on for the process (it protects the host
    application too). When the caller allows more pixels than the guard does, the file is
    opened by Pillow's format plugins directly, which do not consult the guard: the global is
    never touched, so other threads keep their protection."""
    try:
        return Image.open(fp)
    except Image.DecompressionBombError as exc:
        guard = Image.MAX_IMAGE_PIXELS
        if max_pixels and guard and max_pixels <= 2 * guard:
            raise ImageError(
                f"{name}: {exc}; raise --max-pixels if this is intended", "too_large"
            ) from exc
    fp.seek(0)
    prefix = fp.read(16)
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        result = accept(prefix) if accept is not None else True
        if result and not isinstance(result, str):  # a str: "looks like it, unsupported"
            fp.seek(0)
            try:
                return factory(fp, name)
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError(f"cannot identify image file {name}")


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


STRIP_PIXELS = 1 << 18
"""Full-size steps work in strips of about this many pixels: whole-photo temporaries cost more in
memory traffic than in arithmetic (a 12 MP float map is 48 MB)."""


def array_image(pixels: np.ndarray) -> Image.Image:
    """A composed uint8 array (HxW, HxWx3 or HxWx4) as a PIL image in "L", "RGB" or "RGBA"."""
    mode = "L" if pixels.ndim == 2 else ("RGBA" if pixels.shape[2] == 4 else "RGB")
    return Image.fromarray(pixels, mode)


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
