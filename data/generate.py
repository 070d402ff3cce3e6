"""Generate the sample e-commerce clickstream shipped with streamlab.

Deterministic: a fixed seed, a fixed start time and only the standard library's ``random``
(whose algorithms are stable across Python versions), with all timestamps computed in integer
milliseconds, so the CSV is byte-identical on every run, whatever numpy/pandas are installed.

Usage (from the repository root)::

    python data/generate.py              # writes data/clickstream.csv and
                                         # streamlab/_data/clickstream.csv.gz
    python data/generate.py --out DIR    # writes DIR/clickstream.csv and DIR/clickstream.csv.gz

Model, in short: ~400 users whose activity follows a Zipf-like law (a few are very active),
each with a home country (skewed towards the US/EU) and a preferred device. Every user gets a
number of sessions; each session starts at a time drawn from a daily cycle in the user's local
time (plus an e-mail campaign burst on the second evening), and walks a funnel
(page_view/search -> add_to_cart -> checkout -> purchase) as a Markov chain with log-normal
think times. Session ids are assigned afterwards by the usual rule: a user's consecutive events
belong to the same session unless more than 30 minutes pass between them.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20260105
START = datetime(2026, 1, 5, tzinfo=UTC)
SPAN_MS = 3 * 24 * 3600 * 1000  # three days
N_USERS = 400
N_SESSIONS = 5_400  # session draws; with heavy users capped by the window this gives ~20,000 events
N_PRODUCTS = 1_500
USER_ZIPF_S = 0.85  # exponent of the users' Zipf-like activity law
SESSION_GAP_MS = 30 * 60 * 1000
COLUMNS = (
    "event_id",
    "ts",
    "user",
    "session",
    "event",
    "page",
    "product_id",
    "category",
    "amount",
    "country",
    "device",
)

# Country mix of the shop's users, and each country's UTC offset (hours) for the daily cycle.
COUNTRIES: tuple[tuple[str, float, int], ...] = (
    ("US", 34.0, -5),
    ("GB", 11.0, 0),
    ("DE", 10.0, 1),
    ("FR", 7.0, 1),
    ("IN", 6.0, 5),
    ("CA", 5.0, -5),
    ("BR", 4.0, -3),
    ("ES", 4.0, 1),
    ("IT", 3.5, 1),
    ("NL", 3.0, 1),
    ("AU", 3.0, 10),
    ("JP", 2.5, 9),
    ("MX", 2.0, -6),
    ("PL", 2.0, 1),
    ("SE", 1.5, 1),
    ("IE", 1.5, 0),
)
DEVICES: tuple[tuple[str, float], ...] = (("mobile", 58.0), ("desktop", 34.0), ("tablet", 8.0))

# Category -> (median price in cents, log-normal sigma, search terms).
CATEGORIES: dict[str, tuple[int, float, tuple[str, ...]]] = {
    "electronics": (8_900, 0.9, ("wireless headphones", "usb-c charger", "4k monitor", "smartwatch")),
    "books": (1_600, 0.4, ("science fiction", "cookbook", "python programming", "graphic novel")),
    "home": (3_500, 0.8, ("coffee maker", "bath towels", "desk lamp", "air purifier")),
    "fashion": (4_200, 0.7, ("running shoes", "winter jacket", "jeans", "wool scarf")),
    "beauty": (2_200, 0.6, ("face serum", "sunscreen", "shampoo", "perfume")),
    "sports": (3_900, 0.8, ("yoga mat", "dumbbells", "cycling helmet", "tent")),
    "toys": (2_500, 0.6, ("lego", "board game", "puzzle", "plush")),
    "grocery": (900, 0.5, ("espresso beans", "green tea", "olive oil", "dark chocolate")),
}
CATEGORY_WEIGHTS = (22.0, 10.0, 16.0, 18.0, 9.0, 10.0, 7.0, 8.0)

# Relative session-start intensity by local hour of day (low at night, peak in the evening).
HOURLY = (
    0.35, 0.20, 0.12, 0.08, 0.07, 0.09, 0.18, 0.35, 0.55, 0.70, 0.80, 0.85,
    0.95, 0.90, 0.85, 0.85, 0.90, 1.00, 1.15, 1.35, 1.50, 1.40, 1.05, 0.65,
)  # fmt: skip
HOURLY_MAX = max(HOURLY)
# An e-mail campaign: the second evening (UTC) gets a burst of extra sessions.
CAMPAIGN_START_MS = (24 + 18) * 3600 * 1000
CAMPAIGN_LEN_MS = 90 * 60 * 1000
CAMPAIGN_SHARE = 0.06


@dataclass(frozen=True)
class Product:
    pid: int
    category: str
    price_cents: int


@dataclass(frozen=True)
class User:
    name: str
    weight: float
    country: str
    utc_offset_h: int
    device: str


@dataclass
class Event:
    ts_ms: int
    user: str
    event: str
    page: str
    product_id: str
    category: str
    amount: str
    country: str
    device: str


def _cents(c: int) -> str:
    return f"{c // 100}.{c % 100:02d}"


def _make_products(rng: random.Random) -> tuple[list[Product], list[float]]:
    names = list(CATEGORIES)
    pids = rng.sample(range(1000, 10000), N_PRODUCTS)
    products: list[Product] = []
    for pid in pids:
        cat = rng.choices(names, CATEGORY_WEIGHTS)[0]
        median, sigma, _ = CATEGORIES[cat]
        price = max(199, round(median * rng.lognormvariate(0.0, sigma) / 100) * 100 - 1)
        products.append(Product(pid, cat, price))
    # Product popularity is itself Zipf-like (a few bestsellers).
    popularity = [1.0 / (rank + 1) ** 0.9 for rank in range(N_PRODUCTS)]
    return products, popularity


def _make_users(rng: random.Random) -> list[User]:
    ranks = list(range(N_USERS))
    rng.shuffle(ranks)  # the most active user is not user-0001
    codes = [c[0] for c in COUNTRIES]
    cweights = [c[1] for c in COUNTRIES]
    offsets = {c[0]: c[2] for c in COUNTRIES}
    users = []
    for i, rank in enumerate(ranks):
        country = rng.choices(codes, cweights)[0]
        device = rng.choices([d[0] for d in DEVICES], [d[1] for d in DEVICES])[0]
        users.append(User(f"user-{i + 1:04d}", 1.0 / (rank + 1) ** USER_ZIPF_S, country, offsets[country], device))
    return users


def _session_start(rng: random.Random, user: User) -> int:
    """A session start (ms since START) following the daily cycle in the user's local time."""
    if rng.random() < CAMPAIGN_SHARE:
        return CAMPAIGN_START_MS + int(rng.expovariate(1.0 / (CAMPAIGN_LEN_MS / 3)) % CAMPAIGN_LEN_MS)
    while True:  # rejection sampling against the hourly profile
        t = rng.randrange(SPAN_MS)
        local_hour = (t // 3_600_000 + user.utc_offset_h) % 24
        if rng.random() * HOURLY_MAX < HOURLY[local_hour]:
            return t


def _think_ms(rng: random.Random, median_s: float, sigma: float = 1.0) -> int:
    """A log-normal think time, capped below the 30-minute session gap."""
    return min(int(median_s * 1000 * rng.lognormvariate(0.0, sigma)) + 1, 20 * 60 * 1000)


class _Session:
    """Walks one visit through the funnel, appending events."""

    def __init__(
        self,
        rng: random.Random,
        user: User,
        device: str,
        products: list[Product],
        popularity: list[float],
        by_category: dict[str, list[int]],
    ) -> None:
        self.rng = rng
        self.user = user
        self.device = device
        self.products = products
        self.popularity = popularity
        self.by_category = by_category
        self.events: list[Event] = []
        self.cart: list[tuple[Product, int]] = []  # (product, line amount in cents)
        self.cart_changed = False

    def emit(self, t: int, event: str, page: str, product: Product | None = None, cents: int = -1) -> None:
        self.events.append(
            Event(
                t,
                self.user.name,
                event,
                page,
                str(product.pid) if product else "",
                product.category if product else "",
                _cents(cents) if cents >= 0 else "",
                self.user.country,
                self.device,
            )
        )

    def pick_product(self, category: str | None = None) -> Product:
        if category is not None and self.rng.random() < 0.8:
            return self.products[self.rng.choice(self.by_category[category])]
        return self.rng.choices(self.products, self.popularity)[0]

    def run(self, t: int) -> int:
        rng = self.rng
        # Landing page.
        r = rng.random()
        state = "view"
        category: str | None = None
        product: Product | None = None
        if r < 0.30:
            self.emit(t, "page_view", "/")
        elif r < 0.50:
            category = rng.choices(list(CATEGORIES), CATEGORY_WEIGHTS)[0]
            self.emit(t, "page_view", f"/c/{category}")
        elif r < 0.78:
            product = self.pick_product()
            self.emit(t, "page_view", f"/product/{product.pid}", product)
        else:
            state = "search"
            category = rng.choices(list(CATEGORIES), CATEGORY_WEIGHTS)[0]
            term = rng.choice(CATEGORIES[category][2])
            self.emit(t, "search", "/search?q=" + term.replace(" ", "+"))
        for _ in range(60):  # hard cap on session length
            r = rng.random()
            if state == "search":
                if r < 0.72:
                    t += _think_ms(rng, 6)
                    product = self.pick_product(category)
                    self.emit(t, "page_view", f"/product/{product.pid}", product)
                    state = "view"
                elif r < 0.85:
                    t += _think_ms(rng, 8)
                    category = rng.choices(list(CATEGORIES), CATEGORY_WEIGHTS)[0]
                    term = rng.choice(CATEGORIES[category][2])
                    self.emit(t, "search", "/search?q=" + term.replace(" ", "+"))
                else:
                    break
            elif state == "view":
                can_checkout = bool(self.cart) and self.cart_changed
                p_cart = 0.11 if product is not None else 0.0
                p_checkout = 0.10 if can_checkout else 0.0
                if r < p_cart and product is not None:
                    t += _think_ms(rng, 25)
                    qty = 1 if rng.random() < 0.85 else rng.randint(2, 3)
                    cents = product.price_cents * qty
                    self.cart.append((product, cents))
                    self.cart_changed = True
                    self.emit(t, "add_to_cart", f"/product/{product.pid}", product, cents)
                    state = "cart"
                elif r < p_cart + p_checkout:
                    state = "checkout"
                elif r < p_cart + p_checkout + 0.50:
                    t += _think_ms(rng, 20)
                    if rng.random() < 0.05 and self.cart:
                        product = None
                        self.emit(t, "page_view", "/cart")
                    elif product is not None and rng.random() < 0.6:
                        product = self.pick_product(product.category)
                        self.emit(t, "page_view", f"/product/{product.pid}", product)
                    else:
                        product = self.pick_product(category)
                        self.emit(t, "page_view", f"/product/{product.pid}", product)
                elif r < p_cart + p_checkout + 0.66:
                    state = "search"
                    t += _think_ms(rng, 10)
                    category = rng.choices(list(CATEGORIES), CATEGORY_WEIGHTS)[0]
                    term = rng.choice(CATEGORIES[category][2])
                    self.emit(t, "search", "/search?q=" + term.replace(" ", "+"))
                else:
                    break
            elif state == "cart":
                if r < 0.10:
                    t += _think_ms(rng, 15)
                    removed, cents = self.cart.pop(rng.randrange(len(self.cart)))
                    self.cart_changed = True
                    self.emit(t, "remove_from_cart", "/cart", removed)
                    state = "view"
                    product = None
                elif r < 0.36:
                    state = "checkout"
                elif r < 0.85:
                    state = "view"
                else:
                    break
            elif state == "checkout":
                if not (self.cart and self.cart_changed):
                    state = "view"
                    continue
                t += _think_ms(rng, 30)
                self.emit(t, "checkout", "/checkout")
                self.cart_changed = False
                if rng.random() < 0.55:
                    t += _think_ms(rng, 45, 0.6)
                    total = sum(c for _, c in self.cart)
                    self.emit(t, "purchase", "/checkout/confirmation", None, total)
                    self.cart.clear()
                    if rng.random() < 0.8:
                        break
                    state = "view"
                    product = None
                elif rng.random() < 0.5:
                    break  # abandoned at checkout
                else:
                    state = "view"
                    product = None
        return t


def generate() -> list[Event]:
    rng = random.Random(SEED)
    products, popularity = _make_products(rng)
    by_category: dict[str, list[int]] = {c: [] for c in CATEGORIES}
    for i, p in enumerate(products):
        by_category[p.category].append(i)
    users = _make_users(rng)

    # How many sessions each user has (Zipf-like), and when they start.
    counts = [0] * N_USERS
    for i in rng.choices(range(N_USERS), [u.weight for u in users], k=N_SESSIONS):
        counts[i] += 1
    events: list[Event] = []
    for user, n in zip(users, counts, strict=True):
        starts = sorted(_session_start(rng, user) for _ in range(n))
        busy_until = -SESSION_GAP_MS
        for start in starts:
            if start <= busy_until:
                # The user is still browsing: the next visit starts a while after the last one.
                start = busy_until + int(rng.expovariate(1.0 / (40 * 60 * 1000))) + 60_000
            device = user.device if rng.random() < 0.85 else rng.choice([d[0] for d in DEVICES])
            session = _Session(rng, user, device, products, popularity, by_category)
            busy_until = session.run(start)
            events.extend(session.events)

    events = [e for e in events if e.ts_ms < SPAN_MS]
    events.sort(key=lambda e: (e.ts_ms, e.user))
    # Strictly increasing timestamps (at millisecond resolution).
    prev = -1
    for e in events:
        if e.ts_ms <= prev:
            e.ts_ms = prev + 1
        prev = e.ts_ms
    return events


def to_csv(events: list[Event]) -> bytes:
    # Sessionize: a user's consecutive events share a session unless 30 minutes pass.
    last_seen: dict[str, tuple[int, str]] = {}
    n_sessions = 0
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for i, e in enumerate(events, start=1):
        seen = last_seen.get(e.user)
        if seen is None or e.ts_ms - seen[0] > SESSION_GAP_MS:
            n_sessions += 1
            sid = f"s-{n_sessions:05d}"
        else:
            sid = seen[1]
        last_seen[e.user] = (e.ts_ms, sid)
        ts = (START + timedelta(milliseconds=e.ts_ms)).strftime("%Y-%m-%dT%H:%M:%S")
        ts += f".{e.ts_ms % 1000:03d}Z"
        w.writerow(
            (
                f"ev-{i:06d}",
                ts,
                e.user,
                sid,
                e.event,
                e.page,
                e.product_id,
                e.category,
                e.amount,
                e.country,
                e.device,
            )
        )
    return buf.getvalue().encode("ascii")


def gzip_bytes(data: bytes) -> bytes:
    """Gzip with a zero mtime and fixed name so the archive is reproducible too."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="clickstream.csv", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write clickstream.csv and clickstream.csv.gz into this directory instead of data/ and streamlab/_data/",
    )
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    if args.out is None:
        csv_path = root / "data" / "clickstream.csv"
        gz_path = root / "streamlab" / "_data" / "clickstream.csv.gz"
    else:
        csv_path = args.out / "clickstream.csv"
        gz_path = args.out / "clickstream.csv.gz"
    data = to_csv(generate())
    _write(csv_path, data)
    _write(gz_path, gzip_bytes(data))
    rows = data.count(b"\n") - 1
    print(f"wrote {rows} rows, {len(data):,} bytes to {csv_path} (and {gz_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
