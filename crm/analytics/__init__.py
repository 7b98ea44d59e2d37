"""Analytics: funnel and stage dwell, forecast with commits and adjustments, weekly snapshots.

Importing this package registers its tables on the shared base.
"""

from crm.analytics import models as _models  # noqa: F401
