"""The ledger's rules that the read side and the workers apply to what they read, so that no
rule has a second copy outside the ledger: the words for how a lease ended, whether a lease is
past its deadline at a moment and so reads ``overdue``, who a lease's holder is, the reason a
checkout is denied for at a moment, what a browser still running on a profile's directory
forbids, an argument checked as the ledger checks a command's field, text made storable,
whether a text says anything, and text as a person is shown it (and why two texts that read
the same differ), a URL with a password in it and the same URL without its userinfo or a
nested URL's, the most a name holds, a number written plainly, and an environment variable
set but empty.
Pure functions of their arguments."""

from ledger._domain.browser import blocking_note, review_refusal, stop_refusal
from ledger._domain.denials import holder_of, reason_at
from ledger._domain.endings import (
    ENDED_UNKNOWN,
    EXPLAINABLE_ENDINGS,
    OVERDUE,
    UNCLEAN_ENDINGS,
    Ended,
    LeaseEnding,
    ending_text,
    lease_ending,
    lease_status_at,
)
from ledger._domain.errors import environment_setting
from ledger._domain.model import (
    MAX_NAME,
    Identity,
    carries_password,
    in_line,
    one_part,
    os_name,
    past_deadline,
    plain_number,
    quoted,
    says_something,
    shown,
    storable,
    told_apart,
    without_nested_passwords,
    without_passwords,
    without_userinfo,
)
from ledger._door import checked

__all__ = [
    "ENDED_UNKNOWN",
    "EXPLAINABLE_ENDINGS",
    "MAX_NAME",
    "OVERDUE",
    "UNCLEAN_ENDINGS",
    "Ended",
    "LeaseEnding",
    "blocking_note",
    "carries_password",
    "checked_identity",
    "checked_text",
    "ending_text",
    "environment_setting",
    "holder_of",
    "in_line",
    "lease_ending",
    "lease_status_at",
    "one_part",
    "os_name",
    "past_deadline",
    "plain_number",
    "quoted",
    "reason_at",
    "review_refusal",
    "says_something",
    "shown",
    "stop_refusal",
    "storable",
    "told_apart",
    "without_nested_passwords",
    "without_passwords",
    "without_userinfo",
]


def checked_text(field: str, value: object) -> str:
    """``value`` if it is text, else ``InvalidInput`` naming ``field`` in the door's words:
    a read's account or id given as a number or bytes (rev48: a raw AttributeError)."""
    text: str = checked(field, str, value)
    return text


def checked_identity(field: str, value: object) -> str:
    """``value`` if the ledger takes it as the id of who or what acts (a worker, a run, a task
    type, an account, a proxy, a region: ``Checkout``'s and ``RegisterProfile``'s rule),
    else the ``InvalidInput`` naming ``field`` a command carrying it would raise (rev48: a
    worker id checked at each checkout only, a region never)."""
    identity: str = checked(field, Identity, value)
    return identity
