"""Demo data: a small company to click through (`stagecraft demo load`, run by `make run`).

Deterministic (seeded), and safe to run twice: it does nothing when the demo users exist.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from crm.activities.models import Article
from crm.commission.plans import PlanInput, save_plan
from crm.customers.models import BUYING_ROLES, TIERS, Pool
from crm.customers.services import add_contact, create_customer, create_pool
from crm.demo_pipeline import work_demo_deals
from crm.directory.models import Team, Territory, User
from crm.directory.services import create_user, manager_of
from crm.leads.models import Campaign, Lead
from crm.leads.services import create_lead
from crm.quotes.models import PriceBook, PriceBookEntry, Product
from crm.stage_design.models import APPROVAL_TABLE, PIPELINE, DesignOwner
from engine.deploy import latest_definition

DEMO_PASSWORD = "stagecraft"  # noqa: S105 - the published demo password
TERRITORIES = [
    ("EAST", "East China 华东"),
    ("SOUTH", "South China 华南"),
    ("INTL", "International"),
]
# (username, display name, roles, team key, locale)
PEOPLE = [
    ("gm", "Grace Meng 孟", ("director",), "company", "zh_CN"),
    ("dora", "Dora Diaz", ("director",), "company", "en"),
    ("east_mgr", "Li Wei 李伟", ("manager",), "EAST", "zh_CN"),
    ("south_mgr", "Chen Jing 陈静", ("manager",), "SOUTH", "zh_CN"),
    ("intl_mgr", "Sam Okafor", ("manager",), "INTL", "en"),
    ("wang", "Wang Fang 王芳", ("rep",), "EAST", "zh_CN"),
    ("zhao", "Zhao Lei 赵磊", ("rep",), "EAST", "zh_CN"),
    ("liu", "Liu Yang 刘洋", ("rep",), "SOUTH", "zh_CN"),
    ("huang", "Huang Min 黄敏", ("rep", "supervisor"), "SOUTH", "zh_CN"),
    ("rita", "Rita Alvarez", ("rep",), "INTL", "en"),
    ("fiona", "Fiona Zhou 周", ("finance",), "company", "zh_CN"),
    ("mark", "Marco Rossi", ("marketing",), "company", "en"),
    ("admin", "Ada Admin", ("admin",), "company", "en"),
    ("ops", "Oscar Ops", ("ops",), "company", "en"),
]
INDUSTRIES = [
    "manufacturing",
    "retail",
    "logistics",
    "healthcare",
    "education",
    "finance",
    "energy",
]
NAME_PARTS = (
    ["Star", "Bright", "Golden", "Blue", "Great", "East", "Pacific", "Silver", "Nova", "Unity"],
    ["River", "Harbor", "Peak", "Bridge", "Field", "Stone", "Sky", "Lotus", "Crane", "Pine"],
    ["Tech", "Trading", "Logistics", "Foods", "Health", "Energy", "Motors", "Textiles"],
)
PRODUCTS = [
    ("CRM-PRO", "Stagecraft Professional (seat/year)", "software", "1200"),
    ("CRM-ENT", "Stagecraft Enterprise (seat/year)", "software", "2400"),
    ("IMPL-D", "Implementation day", "services", "6000"),
    ("TRAIN", "Training workshop", "services", "15000"),
    ("SUP-PREM", "Premium support (year)", "support", "30000"),
]


@dataclass
class DemoResult:
    created: bool
    users: list[str] = field(default_factory=list)
    customers: int = 0
    leads: int = 0
    deals: int = 0


def load_demo(
    session: Session, *, now: datetime, customers: int = 200, seed: int = 7
) -> DemoResult:
    """Create the demo company unless it exists; return who can sign in."""
    if session.scalar(select(User.id).where(User.username == "admin")) is not None:
        return DemoResult(False, [p[0] for p in PEOPLE])
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    territories = {code: Territory(code=code, name=name) for code, name in TERRITORIES}
    session.add_all(territories.values())
    session.flush()
    company = Team(name="Company")
    session.add(company)
    session.flush()
    teams = {"company": company}
    for code, territory in territories.items():
        teams[code] = Team(
            name=f"Sales {territory.name}", parent_id=company.id, territory_id=territory.id
        )
    session.add_all(teams.values())
    session.flush()
    password = generate_password_hash(DEMO_PASSWORD)
    users = {}
    for username, display, roles, team_key, locale in PEOPLE:
        team = teams[team_key]
        users[username] = create_user(
            session,
            username,
            display,
            roles,
            now=now,
            team_id=team.id,
            locale=locale,
            territory_id=team.territory_id,
            email=f"{username}@demo.stagecraft.invalid",
            password_hash=password,
        )
    company.manager_id = users["gm"].id
    for code, manager in (("EAST", "east_mgr"), ("SOUTH", "south_mgr"), ("INTL", "intl_mgr")):
        teams[code].manager_id = users[manager].id
    # Who may edit which design: East owns new business, South renewals, the company approvals.
    for kind, key, team in (
        (PIPELINE, "new_business", teams["EAST"]),
        (PIPELINE, "renewal", teams["SOUTH"]),
        (APPROVAL_TABLE, "quote_approval_chain", company),
    ):
        session.add(DesignOwner(kind=kind, key=key, team_id=team.id, set_by="demo", set_at=now))
    pools = {
        code: create_pool(
            session, f"{territory.name} customer pool", "customer", territory_id=territory.id
        )
        for code, territory in territories.items()
    }
    lead_pool = create_pool(session, "Inbound leads", "lead")
    _catalogue(session)
    for name, basis, rate, cap, tiers, team in (
        ("Standard cash plan", "cash", "3", "", "0 0.8\n80 1.0\n100 1.5", company),
        ("International sales plan", "sales", "2", "50000", "0 1\n100 2", teams["INTL"]),
    ):
        plan = PlanInput(
            name=name,
            basis=basis,
            base_rate_pct=rate,
            valid_from=date(now.year, 1, 1),
            valid_to=None,
            cap=cap,
            tiers=tiers,
            team_ids=(team.id,),
        )
        save_plan(session, users["admin"], None, plan, now=now)
    reps = [u for u in users.values() if "rep" in u.roles]
    made = _customers(session, rng, now, customers, reps, pools, territories)
    leads = _leads(session, rng, now, users["mark"], lead_pool)
    deals = 0
    if latest_definition(session, "lead_to_cash") is not None:
        managers = {u.id: users["gm"] for u in reps}
        for rep in reps:
            boss = manager_of(session, rep)
            managers[rep.id] = boss or users["gm"]
        pool_leads = list(
            session.scalars(
                select(Lead).where(Lead.pool_id == lead_pool.id).order_by(Lead.id).limit(21)
            )
        )
        deals = work_demo_deals(session, rng, now, reps, managers, pool_leads)
    session.add(
        Article(
            title="Handling the price objection",
            body=_ARTICLE,
            tags="sales,pricing",
            author_id=users["east_mgr"].id,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return DemoResult(True, [p[0] for p in PEOPLE], made, leads, deals)


def _catalogue(session: Session) -> None:
    book = PriceBook(name="Standard CNY", currency="CNY", is_default=True)
    session.add(book)
    session.flush()
    for sku, name, line, price in PRODUCTS:
        product = Product(sku=sku, name=name, product_line=line)
        session.add(product)
        session.flush()
        session.add(
            PriceBookEntry(price_book_id=book.id, product_id=product.id, unit_price=Decimal(price))
        )


def _customers(
    session: Session,
    rng: random.Random,
    now: datetime,
    count: int,
    reps: list[User],
    pools: dict[str, Pool],
    territories: dict[str, Territory],
) -> int:
    for n in range(count):
        name = " ".join(rng.choice(part) for part in NAME_PARTS) + f" {n + 1:03d}"
        code = rng.choice(list(territories))
        in_pool = rng.random() < 0.25
        local_reps = [r for r in reps if r.territory_id == territories[code].id] or reps
        owner = None if in_pool else rng.choice(local_reps)
        customer = create_customer(
            session,
            owner or reps[0],
            name,
            now=now - timedelta(days=rng.randint(1, 400)),
            tier=rng.choices(TIERS, weights=[1, 2, 4, 3, 2])[0],
            owner=owner,
            pool_id=pools[code].id,
            territory_id=territories[code].id,
            industry=rng.choice(INDUSTRIES),
            phone=f"+86 21 {rng.randint(10000000, 99999999)}",
            source=rng.choice(["referral", "web", "event", "cold_call"]),
            confirm_duplicate=True,
        )
        customer.last_activity_at = now - timedelta(days=rng.randint(0, 90)) if owner else None
        for role in rng.sample(BUYING_ROLES, k=rng.randint(1, 3)):
            add_contact(
                session,
                owner or reps[0],
                customer.id,
                f"Contact {n + 1}-{role[:4]}",
                title=role.replace("_", " ").title(),
                buying_role=role,
                influence=rng.randint(2, 5),
            )
    return count


def _leads(session: Session, rng: random.Random, now: datetime, marketer: User, pool: Pool) -> int:
    campaign = Campaign(
        name="Autumn trade fair 2026",
        channel="event",
        cost=Decimal("80000"),
        currency="CNY",
        owner_id=marketer.id,
    )
    online = Campaign(
        name="Online ads Q4",
        channel="online",
        cost=Decimal("20000"),
        currency="CNY",
        owner_id=marketer.id,
    )
    session.add_all([campaign, online])
    session.flush()
    for n in range(30):
        create_lead(
            session,
            marketer,
            f"Lead {n + 1}",
            now=now - timedelta(days=rng.randint(0, 20)),
            company=f"Prospect {n + 1} Ltd",
            source="online" if n % 3 == 0 else "event",
            campaign_id=(online if n % 3 == 0 else campaign).id,
            pool_id=pool.id,
            phone=f"+86 10 {rng.randint(10000000, 99999999)}",
        )
    return 30


_ARTICLE = """When a customer says the price is too high, ask what they compare it with.
Then show the cost of the problem the product solves, and offer a smaller first phase
rather than a discount. Discounts over 15 % need director approval."""
