"""The HTTP routes, one module per group, each adding its routes to the app: health (health, readiness,
metrics), models (list, predict, explain, card), admin (load/unload models, keys), dashboard (/ui).
``server.Server`` holds what they share (state, settings, access control, the model call)."""
