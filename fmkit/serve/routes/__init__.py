"""The HTTP routes, one module per group, each adding its routes to the app: health (health, readiness,
metrics), models (list, predict, explain, card), admin (load/unload models, keys), dashboard (/ui),
assistants (ask, list, card, the chat page /ui/assistants/NAME).
``server.Server`` holds what they share (state, settings, access control, the model call)."""
