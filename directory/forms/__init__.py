"""WTForms classes, a module per audience: the public listing forms, the moderators' forms
and the search form. Forms turn request data into typed values and give each field its
message; the rules they check live in validation.py, geomath.py and the vocabulary."""

from .listing import (
    NewPharmacyForm,
    NewPrescriberForm,
    PharmacyCorrectionForm,
    PharmacyForm,
    PrescriberCorrectionForm,
    PrescriberForm,
    form_class,
)
from .moderation import (
    AccountForm,
    ActionForm,
    ApproveForm,
    AuditFilterForm,
    EditApproveForm,
    FlagForm,
    LoginForm,
    MergeForm,
    PinForm,
    ReasonForm,
    ResolveForm,
    RoleForm,
    StatusForm,
    VerifyForm,
)
from .search import SearchForm

__all__ = [
    "AccountForm",
    "ActionForm",
    "ApproveForm",
    "EditApproveForm",
    "AuditFilterForm",
    "FlagForm",
    "LoginForm",
    "MergeForm",
    "ResolveForm",
    "NewPharmacyForm",
    "NewPrescriberForm",
    "PharmacyCorrectionForm",
    "PharmacyForm",
    "PinForm",
    "PrescriberCorrectionForm",
    "PrescriberForm",
    "ReasonForm",
    "RoleForm",
    "SearchForm",
    "StatusForm",
    "VerifyForm",
    "form_class",
]
