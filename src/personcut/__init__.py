"""personcut: remove the background behind people in photos.

    import personcut
    personcut.remove("photo.jpg").save("photo.png")        # RGBA cut-out
    personcut.remove("photo.jpg", bg="white")               # over a colour
    personcut.remove_video("talk.mp4", "talk.webm")         # clips (the video extra)

Everything here runs without torch; training lives in :mod:`personcut.train` (the train extra).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["CutoutOptions", "Segmenter", "__version__", "remove", "remove_video"]

_LAZY = {
    "remove": "personcut.cutout",
    "CutoutOptions": "personcut.cutout",
    "Segmenter": "personcut.segmenter",
    "remove_video": "personcut.video",
}


def __getattr__(name: str):
    # Imported at first use so `import personcut` stays cheap (no NumPy, Pillow or ONNX Runtime).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'personcut' has no attribute {name!r}")
