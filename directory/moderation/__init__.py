"""The listing lifecycle: the only code that creates or changes published listings.

Listings come in (`submissions`), moderators decide on them (`decisions`), keep them true
(`upkeep`) and work through a `queue`; every change writes an `audit` entry in the same
transaction. `accounts` holds the moderators themselves. Callers use the package:
`from directory import moderation; moderation.approve(...)`.
"""

from .accounts import (
    PASSWORD_LONG,
    PASSWORD_MAX,
    PASSWORD_MIN,
    PASSWORD_SHORT,
    USERNAME_MAX,
    USERNAME_MESSAGE,
    USERNAME_MIN,
    InvalidCredentials,
    all_accounts,
    authenticate,
    check_credentials,
    get_account,
    record_sign_in,
    save_account,
    set_account_active,
    toggle_active,
)
from .audit import AuditFilters, AuditLog, audit_csv, audit_log, csv_safe, history, record
from .decisions import Review, approve, diff, merge, reject, review
from .errors import AlreadyHandled, ModerationError, NotFound
from .queue import due_for_reverification, pending, queue_counts
from .submissions import (
    ADDRESS_FIELDS,
    REFERENCE_ALPHABET,
    content_hash,
    create_seed_listing,
    geocode_submission,
    submit,
)
from .upkeep import (
    add_flag,
    add_verification,
    get_listing,
    get_submission,
    known,
    mark_verified,
    remove_flag,
    set_pin,
    set_status,
)

__all__ = [
    "ADDRESS_FIELDS",
    "PASSWORD_LONG",
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "PASSWORD_SHORT",
    "REFERENCE_ALPHABET",
    "USERNAME_MAX",
    "USERNAME_MESSAGE",
    "USERNAME_MIN",
    "AlreadyHandled",
    "AuditFilters",
    "AuditLog",
    "InvalidCredentials",
    "ModerationError",
    "NotFound",
    "Review",
    "add_flag",
    "add_verification",
    "all_accounts",
    "approve",
    "audit_csv",
    "audit_log",
    "authenticate",
    "check_credentials",
    "content_hash",
    "create_seed_listing",
    "csv_safe",
    "diff",
    "due_for_reverification",
    "geocode_submission",
    "get_account",
    "get_listing",
    "get_submission",
    "history",
    "known",
    "mark_verified",
    "merge",
    "pending",
    "queue_counts",
    "record",
    "record_sign_in",
    "reject",
    "remove_flag",
    "review",
    "save_account",
    "set_account_active",
    "set_pin",
    "set_status",
    "submit",
    "toggle_active",
]
