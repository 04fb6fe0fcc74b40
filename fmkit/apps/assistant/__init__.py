"""The customer-service assistant: FAQ retrieval with an encoder, intent routing and calibrated handoff.

    from fmkit.apps.assistant import Assistant
    assistant = Assistant.open("assistants/acme")
    assistant.ask("how long does a roof replacement take?")   # answer, confidence, handoff, intent, matches

Built by ``fmkit assistant build`` (build.py), measured by ``fmkit assistant evaluate`` (evaluate.py);
docs/assistant.md describes it.
"""

from fmkit.apps.assistant.assistant import Assistant

__all__ = ["Assistant"]
