"""Errors a user can cause. Each carries a one-line message naming the file and the problem.

The command line turns them into what the user sees (docs/errors.md lists every check):

* :class:`InputError` — bad input (file, option, combination, output folder): one line on
  stderr, exit status 2, nothing written.
* :class:`NotApplicable` — raised by an item whose preconditions are not met: the item says
  "Does not apply" with the message as its reason.
* :class:`CannotMeasure` — raised by an item that ran but whose input makes the measurement
  meaningless (for example identical half maps): the item says "Could not be measured" with
  the message, a sentence in words, as its reason.
"""


class InputError(Exception):
    """Bad input (file, option or combination); the command line prints it and exits 2."""


class NotApplicable(Exception):
    """Raised by a check whose preconditions are not met; the message says why."""


class CannotMeasure(Exception):
    """Raised by an item that cannot give a meaningful number; the message says why, in words
    (it is shown to the user as the item's reason)."""
