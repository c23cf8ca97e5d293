"""Serve: Hangar's models over a local OpenAI- and Anthropic-compatible HTTP API (``hangar serve``, Server page).

Pure Python and no Qt. The HTTP stack (FastAPI on uvicorn) is imported only when a server starts, so the rest of
the app does not pay for it.
"""
