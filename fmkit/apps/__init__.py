"""Applications: what a user builds from fmkit's stages (fmkit/apps/assistant: a support assistant).

Apps sit above every stage and use fmkit's public API the way a user would (``fmkit.load``,
``fmkit.retrieval.load_encoder``); nothing below them imports an app (tests/test_layering.py).
"""
