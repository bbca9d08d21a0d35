"""personcut: remove the background behind people in photos."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Segmenter", "__version__", "remove", "remove_video"]


def __getattr__(name: str):
    # Imported lazily so `import personcut` stays cheap and torch-free.
    if name in ("Segmenter", "remove"):
        from personcut import inference

        return getattr(inference, name)
    if name == "remove_video":
        from personcut.video import remove_video

        return remove_video
    raise AttributeError(f"module 'personcut' has no attribute {name!r}")
