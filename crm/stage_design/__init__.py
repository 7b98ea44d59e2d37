"""The manager designer: stage lists per pipeline and the quote approval table, each saved as a
new BPMN/DMN version through the engine's deploy; owners per pipeline; a preview of the effect.

Importing this package registers its tables (until crm/__init__.py imports the models itself).
"""

from crm.stage_design import models as _models  # noqa: F401
