"""Errors that carry a message meant for the user, shown by the CLI without a traceback."""


class ApexError(Exception):
    """Bad input from the user: config, file, task name, policy, CLI argument."""


class ConfigError(ApexError):
    """A config key is missing, unknown or has a bad value; the message names the key."""
