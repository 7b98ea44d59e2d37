"""The admins' designer: edit, check, save and deploy BPMN files and task forms, with history.

Importing this package registers the `designer_audit` audit table. Nothing here imports Flask.
"""

from crm.designer import models as _models  # noqa: F401
