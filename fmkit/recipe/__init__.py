"""Recipes: a YAML list of registered stages, validated at once, run with caching and a registry."""

from fmkit.recipe.schema import Recipe, load_recipe

__all__ = ["Recipe", "load_recipe"]
