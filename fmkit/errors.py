"""Error types and the exit codes the CLI maps them to.

0 ok, 1 a check failed (a gate, an accuracy budget), 2 bad input (the user can fix it).
"""


class FmkitError(Exception):
    """Base class for every error fmkit raises on purpose."""

    exit_code = 1


class BadInputError(FmkitError, ValueError):
    """The user's input is wrong: the message names the bad value and the fix."""

    exit_code = 2


class CheckFailedError(FmkitError):
    """A measured quantity broke a budget or a policy."""

    exit_code = 1


class TrainingDivergedError(FmkitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 1


class BundleIntegrityError(BadInputError):
    """A bundle's files no longer match its content digest, or its manifest no longer matches its seal."""

    exit_code = 2


class NonFiniteOutputError(FmkitError):
    """The model produced NaN or infinite logits.

    Exit 1, not 2: a runtime's inputs are token ids or 0..255 pixels, which a healthy model maps to
    finite logits, so the model is at fault (damaged or diverged weights), not the request.
    """

    exit_code = 1
