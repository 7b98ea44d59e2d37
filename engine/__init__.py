"""The BPM runtime: deploys BPMN/DMN as immutable versions and runs persisted instances.

Nothing in this package imports Flask; callers pass a SQLAlchemy session, an actor and `now`.
"""
