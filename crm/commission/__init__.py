"""Commission: plans with tiers and coefficients, the month-end run, statements (issue 7).

Importing this package registers its tables and its `crm.*` operations.
"""

from crm.commission import models as _models  # noqa: F401
from crm.commission import operations as _operations  # noqa: F401
