"""Repair instances: move a token, migrate to another version, fix data and retry, in bulk.

Only ops and admins repair. Each change of one instance is one transaction under the instance's
row lock and optimistic version (`apply_change`) and leaves an event saying who did what. A
caller may pass the version it showed the user (`expected_version`): if the instance changed
since, the action is refused as a conflict instead of acting on something nobody looked at.
"""

from __future__ import annotations

from engine.repair.bulk import (
    BULK_ACTIONS,
    MAX_BULK,
    BulkResult,
    preview_bulk,
    run_action,
    run_bulk,
    run_bulk_and_record,
)
from engine.repair.common import Element, StaleInstance, lock_for_repair, require_repairer
from engine.repair.fixes import (
    edit_data_and_retry,
    failed_task_data,
    parse_task_data,
    reassign_open_tasks,
)
from engine.repair.log import RepairLog, get_repair_log, record_repair
from engine.repair.migration import (
    Compatibility,
    check_migration,
    migrate_instance,
    migration_targets,
)
from engine.repair.moving import Token, movable_elements, move_token, tokens_of

__all__ = [
    "BULK_ACTIONS",
    "MAX_BULK",
    "BulkResult",
    "Compatibility",
    "Element",
    "RepairLog",
    "StaleInstance",
    "Token",
    "check_migration",
    "edit_data_and_retry",
    "failed_task_data",
    "get_repair_log",
    "lock_for_repair",
    "migrate_instance",
    "migration_targets",
    "movable_elements",
    "move_token",
    "parse_task_data",
    "preview_bulk",
    "reassign_open_tasks",
    "record_repair",
    "require_repairer",
    "run_action",
    "run_bulk",
    "run_bulk_and_record",
    "tokens_of",
]
