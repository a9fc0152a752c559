"""The web dashboard: server-rendered pages under ``/ui`` (see docs/dashboard.md).

``router`` is included by the API app; pages read through the service layer, and every
write the pages offer goes through the JSON API with the user's bearer token.
"""

from breadthflow.web.routes import router

__all__ = ["router"]
