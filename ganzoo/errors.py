"""Exceptions that carry a one-line message meant for the user (the CLI prints it without a traceback)."""

from __future__ import annotations


class GanzooError(Exception):
    """A runtime failure the user can act on (missing data, diverged training, unreadable checkpoint).

    The CLI prints the message on one line and exits with code 1.
    """

    exit_code = 1


class UsageError(GanzooError, ValueError):
    """A mistake in what the user asked for (unknown plugin, bad option, bad data spec).

    The CLI prints the message on one line and exits with code 2.
    """

    exit_code = 2


class PluginError(UsageError):
    """An unknown, ambiguous, broken or invalid plugin."""


class PluginFailure(GanzooError):
    """A plugin's own code (a loss, a forward or backward pass, sample) raised during training; the message names
    the plugin, the update, the step and the exception, and where the traceback was written."""


class DivergenceError(GanzooError):
    """Training produced a non-finite loss; the message names the step and the loss."""

    def __init__(self, message: str, step: int, loss_name: str) -> None:
        super().__init__(message)
        self.step = step
        self.loss_name = loss_name


class HubError(GanzooError):
    """A Hugging Face Hub problem: repo or revision not found, offline without a cached copy, no token, no write
    access, or a saved model this ganzoo cannot read."""
