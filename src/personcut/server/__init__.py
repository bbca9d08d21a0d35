"""HTTP service: ``create_app(segmenter, settings)`` builds the FastAPI app, ``serve`` runs it.

app.py        the routes and the error answers
admission.py  how many jobs and upload bytes are let in at once (503 beyond)
upload.py     reading the image from a request, counted and bounded as it arrives
settings.py   the limits
static/       the web page
"""

from personcut.server.app import create_app, serve
from personcut.server.settings import Settings

__all__ = ["Settings", "create_app", "serve"]
