"""Errors a user can cause. Each carries a one-line message naming the file and the problem."""


class InputError(Exception):
    """Bad input (file, option or combination); the command line prints it and exits 2."""


class NotApplicable(Exception):
    """Raised by a check whose preconditions are not met; the message says why."""
