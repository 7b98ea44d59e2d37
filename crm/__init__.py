"""The sales domain: directory, customers and pools, leads, opportunities, quotes, orders.

Importing this package registers its tables on the shared base, its `crm.*` operations with
the engine, and its lane resolver. Nothing here imports Flask.
"""

from crm import commission as _commission  # noqa: F401,E402  (tables and crm.* operations)
from crm import operations as _operations  # noqa: F401,E402  (registers crm.* operations)
from crm import ops_lookup as _ops_lookup  # noqa: F401,E402  (the ops console's lookups)
from crm.activities import models as _activities  # noqa: F401
from crm.analytics import models as _analytics  # noqa: F401
from crm.customers import models as _customers  # noqa: F401
from crm.designer import models as _designer  # noqa: F401
from crm.directory import models as _directory  # noqa: F401
from crm.lanes import install as _install  # noqa: E402
from crm.leads import models as _leads  # noqa: F401
from crm.orders import models as _orders  # noqa: F401
from crm.pool import models as _pool  # noqa: F401
from crm.quotes import models as _quotes  # noqa: F401
from crm.sales import models as _sales  # noqa: F401
from crm.stage_design import models as _stage_design  # noqa: F401
from crm.targets import models as _targets  # noqa: F401

_install()
