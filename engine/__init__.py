"""The BPM runtime: deploys BPMN/DMN as immutable versions and runs persisted instances.

Nothing in this package imports Flask; callers pass a SQLAlchemy session, an actor and `now`.
"""

from engine import library_fixes as _library_fixes  # noqa: E402,F401  (patches SpiffWorkflow once)
