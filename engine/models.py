"""Engine tables: deployed versions, instances and the rows derived from their state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base


class Deployment(Base):
    """One deploy of a set of BPMN/DMN/form files, keyed by the hash of their content."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    deployed_by: Mapped[str | None] = mapped_column(String(80))
    deployed_at: Mapped[datetime]
    comment: Mapped[str | None] = mapped_column(Text)
    # {file name: text} of every BPMN, DMN and form file in the deploy, kept for viewers and diffs.
    sources: Mapped[dict[str, Any]]
    warnings: Mapped[dict[str, Any]]


class ProcessDefinition(Base):
    """An immutable, numbered version of one executable process, with its parsed spec."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("process_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    spec_hash: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    source_file: Mapped[str] = mapped_column(String(255))
    # The serialized spec and the specs of every process it calls: stored once per version.
    spec_json: Mapped[str] = mapped_column(Text, deferred=True)
    forms: Mapped[dict[str, Any]]
    serializer_version: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]

    deployment: Mapped[Deployment] = relationship()


class ProcessInstance(Base):
    """A running or finished instance; its state is stored without the spec."""

    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_process_instance_status_updated", "status", "updated_at"),
        Index("ix_process_instance_subject", "subject_type", "subject_id"),
        # The ops console: its list (newest first within a process, version or status), its
        # counts per status, and the heatmap's live instances of one version (with updated_at,
        # the start of waits recorded before waits carried their own).
        Index("ix_process_instance_process_status", "process_id", "status", "id"),
        Index(
            "ix_process_instance_definition_status",
            "definition_id",
            "status",
            "id",
            postgresql_include=["updated_at"],
        ),
        Index("ix_process_instance_status_started", "status", "started_at"),
        # Status by id without reading the rows: counts per status of instances found through
        # their tasks, timers or incidents (on SQLite a plain, redundant index on id).
        Index("ix_process_instance_id_status", "id", postgresql_include=["status"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(16))
    # Workflow-level state (data, correlations, subprocesses); tasks are in InstanceTaskState.
    state: Mapped[str] = mapped_column(Text)
    serializer_version: Mapped[str] = mapped_column(String(16))
    # Random per save: lets a process reuse the workflow it saved last instead of restoring it.
    state_token: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    next_timer_at: Mapped[datetime | None] = mapped_column(index=True)
    started_by: Mapped[str | None] = mapped_column(String(80))
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    definition: Mapped[ProcessDefinition] = relationship()

    __mapper_args__ = {"version_id_col": version}


class InstanceTaskState(Base):
    """The serialized form of one library task; only changed tasks are rewritten."""

    __tablename__ = "instance_task_state"

    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), primary_key=True
    )
    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # "" for the top-level workflow, else the id of the task that owns the subprocess.
    workflow_key: Mapped[str] = mapped_column(String(36))
    body: Mapped[str] = mapped_column(Text)


class HumanTask(Base):
    """One READY manual task, as the inbox sees it."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_human_task_assignee_status", "assignee", "status", "due_at"),
        Index("ix_human_task_role_status", "candidate_role", "status", "due_at"),
        Index("ix_human_task_user_status", "candidate_user", "status", "due_at"),
        Index("ix_human_task_team_status", "candidate_team", "status", "due_at"),
        Index("ix_human_task_subject", "subject_type", "subject_id", "status"),
        # The inbox (docs/inbox-performance.md). The partial ones hold open tasks only: a task
        # leaves them when it is completed, so they stay as small as the inboxes. The queues'
        # indexes carry what the inbox reads besides (PostgreSQL only): process and properties
        # for the filter's choices, the other candidates to count each task in one queue.
        Index("ix_human_task_completed_by", "completed_by", "status", "completed_at"),
        Index(
            "ix_human_task_open_assignee",
            "assignee",
            "due_at",
            "id",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index(
            "ix_human_task_offered_user",
            "candidate_user",
            "due_at",
            "id",
            postgresql_include=["process_id", "properties"],
            postgresql_where=text("status = 'open' AND assignee IS NULL"),
            sqlite_where=text("status = 'open' AND assignee IS NULL"),
        ),
        Index(
            "ix_human_task_offered_role",
            "candidate_role",
            "due_at",
            "id",
            postgresql_include=["process_id", "properties", "candidate_user"],
            postgresql_where=text("status = 'open' AND assignee IS NULL"),
            sqlite_where=text("status = 'open' AND assignee IS NULL"),
        ),
        Index(
            "ix_human_task_offered_team",
            "candidate_team",
            "due_at",
            "id",
            postgresql_include=["process_id", "properties", "candidate_user", "candidate_role"],
            postgresql_where=text("status = 'open' AND assignee IS NULL"),
            sqlite_where=text("status = 'open' AND assignee IS NULL"),
        ),
        # The ops console: instances waiting at one element, and the heatmap.
        Index(
            "ix_human_task_open_element",
            "bpmn_id",
            "instance_id",
            "created_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index(
            "ix_human_task_open_subject",
            "subject_type",
            "subject_id",
            "assignee",
            "id",
            postgresql_include=["due_at", "process_id", "properties"],
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str] = mapped_column(String(36), unique=True)
    process_id: Mapped[str] = mapped_column(String(255))
    bpmn_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    candidate_role: Mapped[str | None] = mapped_column(String(40))
    candidate_team: Mapped[str | None] = mapped_column(String(80))
    candidate_user: Mapped[str | None] = mapped_column(String(80))
    assignee: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))
    form: Mapped[str | None] = mapped_column(String(255))
    ui_form: Mapped[str | None] = mapped_column(String(255))
    instructions: Mapped[str | None] = mapped_column(Text)
    properties: Mapped[dict[str, Any]]
    subject_type: Mapped[str | None] = mapped_column(String(40))
    subject_id: Mapped[int | None]
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(80))
    draft: Mapped[dict[str, Any] | None]


class InstanceTimer(Base):
    """A timer event an instance waits on, with the UTC time it is due."""

    __tablename__ = "instance_timer"
    __table_args__ = (
        Index("ix_instance_timer_status_fire_at", "status", "fire_at"),
        # The ops console: instances waiting at one element, and the heatmap.
        Index(
            "ix_instance_timer_waiting_element",
            "bpmn_id",
            "instance_id",
            "created_at",
            postgresql_where=text("status = 'waiting'"),
            sqlite_where=text("status = 'waiting'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str] = mapped_column(String(36))
    bpmn_id: Mapped[str] = mapped_column(String(255))
    fire_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # When the instance began to wait (None on rows written before this was recorded).
    created_at: Mapped[datetime | None]


class MessageSubscription(Base):
    """An instance waiting for a named message, found by its correlation key."""

    __tablename__ = "message_subscription"
    __table_args__ = (
        Index("ix_message_subscription_lookup", "message_name", "correlation_key"),
        # The ops console: instances waiting at one element, and the heatmap.
        Index("ix_message_subscription_element", "bpmn_id", "instance_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str] = mapped_column(String(36))
    bpmn_id: Mapped[str] = mapped_column(String(255))
    message_name: Mapped[str] = mapped_column(String(255))
    correlation_key: Mapped[str | None] = mapped_column(String(255))
    # When the instance began to wait (None on rows written before this was recorded).
    created_at: Mapped[datetime | None]


class InstanceEvent(Base):
    """Append-only history of an instance: who did what, when, with which data."""

    __tablename__ = "instance_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str | None] = mapped_column(String(80))
    bpmn_id: Mapped[str | None] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[dict[str, Any]]


class Incident(Base):
    """A failure of one task: the element, the script line and the message."""

    __tablename__ = "incident"
    # The ops console: "in error" filters and the heatmap's failures (open incidents only).
    __table_args__ = (
        Index(
            "ix_incident_open",
            "instance_id",
            "bpmn_id",
            "created_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[str | None] = mapped_column(String(36))
    bpmn_id: Mapped[str | None] = mapped_column(String(255))
    element_name: Mapped[str | None] = mapped_column(String(255))
    line: Mapped[int | None]
    error_line: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(80))
