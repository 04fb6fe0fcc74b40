"""The dashboard route (/ui): a static page that asks for a key and fetches what that key may see."""

from __future__ import annotations

from fmkit.serve.routes.server import Server


def add_routes(app, server: Server) -> None:
    from fastapi.responses import HTMLResponse

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard():
        """A page with no data in it: it asks for a key and fetches what that key may see."""
        from fmkit.serve.dashboard import PAGE

        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
