"""Errors that the CLI reports as one clear line (no stack trace)."""


class CdrwatchError(Exception):
    """A problem with the input or configuration that the user can fix; the message says what."""


class ConfigError(CdrwatchError):
    """A configuration key is unknown or its value is not acceptable."""
