"""Build a pipeline's funnel roll-up from the whole stage history, and the rule that keeps the
roll-up built for each pipeline's current stages.

On PostgreSQL the same figures as `crm.analytics.rollup.deal_share`, added up over every deal,
come from window functions in three statements instead of one Python call per deal.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from crm.analytics.models import (
    FunnelDeal,
    FunnelDwellDay,
    FunnelEntryDay,
    FunnelRollup,
    FunnelStaleDeal,
)
from crm.analytics.rollup import (
    NO_DAY_AFTER,
    NO_DAY_BEFORE,
    OPEN_CELL,
    OUTCOMES,
    refresh_funnel_deal,
    refresh_funnel_deals,
)
from crm.analytics.stages import pipeline_stages
from crm.sales.models import PIPELINES, Opportunity

_DEALS = """
INSERT INTO funnel_deal (opportunity_id, pipeline, amount, status, last_move_id, left_out)
SELECT o.id, o.pipeline, o.amount, o.status,
    coalesce((SELECT max(x.id) FROM stage_change x WHERE x.opportunity_id = o.id), 0),
    EXISTS (SELECT 1 FROM stage_change x
            WHERE x.opportunity_id = o.id AND x.to_stage <> ALL(:known))
FROM opportunity o WHERE o.pipeline = :pipeline
"""

_STAYS = """
WITH moves AS (
    SELECT sc.opportunity_id AS oid, sc.id, sc.to_stage AS stage, sc.changed_at AS at,
        lead(sc.changed_at) OVER w AS next_at, lead(sc.to_stage) OVER w AS next_stage,
        d.amount, d.status
    FROM stage_change sc JOIN funnel_deal d ON d.opportunity_id = sc.opportunity_id
    WHERE d.pipeline = :pipeline AND NOT d.left_out
    WINDOW w AS (PARTITION BY sc.opportunity_id ORDER BY sc.changed_at, sc.id)
), stays AS (
    SELECT oid, id, stage, at, next_at, amount, status,
        CAST(at AT TIME ZONE 'UTC' AS date) AS day,
        coalesce(next_stage = {following}, false) AS moved_on
    FROM moves WHERE stage = ANY(:stages)
), marked AS MATERIALIZED (
    SELECT stage, day, amount, status, next_at IS NULL AS open,
        coalesce(lag(day) OVER (PARTITION BY oid, stage ORDER BY at, id),
                 CAST(:no_day_before AS date)) AS prev_day,
        coalesce(min(CASE WHEN moved_on THEN day END) OVER (
                     PARTITION BY oid, stage ORDER BY at, id
                     ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
                 CAST(:no_day_after AS date)) AS moved_on_day,
        CASE WHEN next_at IS NULL
             THEN extract(epoch FROM at - (CAST(day AS timestamp) AT TIME ZONE 'UTC'))
             ELSE extract(epoch FROM next_at - at) END AS seconds
    FROM stays
), entries AS (
    INSERT INTO funnel_entry_day (pipeline, stage, day, prev_day, moved_on_day, stays, amount,
        won, lost)
    SELECT :pipeline, stage, day, prev_day, moved_on_day, count(*), sum(amount),
        count(*) FILTER (WHERE status = 'won'), count(*) FILTER (WHERE status = 'lost')
    FROM marked GROUP BY stage, day, prev_day, moved_on_day
)
INSERT INTO funnel_dwell_day (pipeline, stage, day, cell, stays, seconds, shortest, longest,
    lengths_known)
SELECT :pipeline, stage, day, cell, count(*), sum(seconds),
    min(seconds) FILTER (WHERE NOT open), max(seconds) FILTER (WHERE NOT open), true
FROM (
    SELECT stage, day, seconds, open,
        CASE WHEN open THEN :open_cell
             ELSE CAST(floor((seconds + 4320) / 8640) AS integer) END AS cell
    FROM marked
) AS cells
GROUP BY stage, day, cell
"""

_LEFT_OUT = """
UPDATE funnel_rollup SET left_out_deals =
    (SELECT count(*) FROM funnel_deal WHERE pipeline = :pipeline AND left_out)
WHERE pipeline = :pipeline
"""


def build_in_database(session: Session, pipeline: str, stages: list[str]) -> None:
    """Fill the (emptied) roll-up tables of a pipeline from its deals and their history."""
    whens = " ".join(
        f"WHEN :s{i} THEN :f{i}" for i in range(len(stages))
    )  # stage names are bound, never spliced in
    following = f"(CASE stage {whens} END)" if stages else "NULL"
    names = {f"s{i}": s for i, s in enumerate(stages)}
    names |= {f"f{i}": stages[i + 1] if i + 1 < len(stages) else "won" for i in range(len(stages))}
    session.execute(text(_DEALS), {"pipeline": pipeline, "known": [*stages, *OUTCOMES]})
    session.execute(
        text(_STAYS.format(following=following)),
        {
            "pipeline": pipeline,
            "stages": stages,
            "no_day_before": NO_DAY_BEFORE,
            "no_day_after": NO_DAY_AFTER,
            "open_cell": OPEN_CELL,
            **names,
        },
    )
    session.execute(text(_LEFT_OUT), {"pipeline": pipeline})


def stage_layout(session: Session, pipeline: str) -> list[str]:
    return [c.stage for c in pipeline_stages(session, pipeline)]


def rebuild_funnel_rollup(session: Session, pipeline: str, *, now: datetime) -> FunnelRollup:
    """Compute a pipeline's roll-up from the whole stage history, for its current stages."""
    stages = stage_layout(session, pipeline)
    if session.get_bind().dialect.name == "postgresql":
        # Stage moves take a shared lock on this table (refresh_funnel_deal): the build waits
        # for those under way and holds new ones back, so each move is counted exactly once.
        session.execute(text("LOCK TABLE funnel_rollup IN EXCLUSIVE MODE"))
    rollup = session.scalar(
        select(FunnelRollup).where(FunnelRollup.pipeline == pipeline).with_for_update()
    )
    if rollup is None:
        rollup = FunnelRollup(pipeline=pipeline)
        session.add(rollup)
    rollup.stages, rollup.left_out_deals, rollup.built_at = ",".join(stages), 0, now
    for model in (FunnelEntryDay, FunnelDwellDay, FunnelDeal):
        session.execute(delete(model).where(model.pipeline == pipeline))
    deals = select(Opportunity.id).where(Opportunity.pipeline == pipeline)
    session.execute(delete(FunnelStaleDeal).where(FunnelStaleDeal.opportunity_id.in_(deals)))
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        build_in_database(session, pipeline, stages)
        # Millions of new rows: without statistics the planner would scan whole tables.
        for table in ("funnel_entry_day", "funnel_dwell_day", "funnel_deal", "funnel_stale_deal"):
            session.execute(text(f"ANALYZE {table}"))
        session.refresh(rollup)
        return rollup
    deal_ids = session.scalars(select(Opportunity.id).where(Opportunity.pipeline == pipeline))
    for opportunity_id in deal_ids.all():
        refresh_funnel_deal(session, opportunity_id)
    return rollup


def rebuild_funnel_rollups(session: Session, now: datetime) -> int:
    """Rule: build the roll-up of each pipeline that has none or was built for other stages,
    and refresh the deals changed behind the services' back (see FunnelStaleDeal).

    Return how many pipelines were built and deals refreshed; running it again changes
    nothing. After a pipeline version with other stages is deployed, or a deal is changed
    without refresh_funnel_deal, the funnel reads the history until this has run.
    """
    built = 0
    current = {r.pipeline: r.stages for r in session.scalars(select(FunnelRollup))}
    for pipeline in PIPELINES:
        if current.get(pipeline) != ",".join(stage_layout(session, pipeline)):
            rebuild_funnel_rollup(session, pipeline, now=now)
            built += 1
    stale = session.scalars(select(FunnelStaleDeal.opportunity_id)).all()
    refresh_funnel_deals(session, stale)
    return built + len(stale)
