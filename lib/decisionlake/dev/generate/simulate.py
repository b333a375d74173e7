"""Per-visitor simulation of web events, CRM notes and fund outcomes (pure Python + numpy).

Each visitor is simulated from its own seeded generator, so the output depends only on the seed
and the visitor's index: any partitioning of visitors over Spark tasks gives the same data.
Advisors carry latent traits (activity, topic interests) that drive their web behaviour, the
topics of their CRM notes and, through the realised behaviour, their purchases, so that models
built later have a real signal to find.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from decisionlake.dev.generate import documents
from decisionlake.dev.generate import taxonomy as tx

MALFORMED_KINDS = (
    "truncated_json",
    "wrong_type",
    "missing_field",
    "impossible_timestamp",
    "invalid_utf8",
)


@dataclass(frozen=True)
class GenSpec:
    """What to generate; every visitor's data follows from it and the visitor index."""

    seed: int
    start_date: date
    days: int
    advisors: int
    anonymous_visitors: int
    bots: int
    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    malformed_rate: float = 0.005
    notes_per_advisor_per_day: float = 0.3

    @property
    def visitors(self) -> int:
        return self.advisors + self.anonymous_visitors + self.bots

    def kind(self, index: int) -> str:
        if index < self.advisors:
            return "advisor"
        if index < self.advisors + self.anonymous_visitors:
            return "anonymous"
        return "bot"


@dataclass
class VisitorOutput:
    """Everything one visitor produced, keyed by arrival date where files are dated."""

    lines: dict[date, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    stats: dict[date, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    notes: dict[date, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    files: dict[date, list[tuple[str, bytes]]] = field(default_factory=lambda: defaultdict(list))
    outcomes: dict[date, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    advisor: dict[str, Any] | None = None


def advisor_id(index: int) -> str:
    return f"ADV{index:06d}"


def _rng(spec: GenSpec, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, index, purpose])


def advisor_profile(spec: GenSpec, index: int) -> dict[str, Any]:
    """CRM attributes (with PII) and latent traits of advisor ``index``."""
    rng = _rng(spec, index, 1)
    first = tx.FIRST_NAMES[rng.integers(len(tx.FIRST_NAMES))]
    last = tx.LAST_NAMES[rng.integers(len(tx.LAST_NAMES))]
    firm, channel = tx.FIRMS[rng.integers(len(tx.FIRMS))]
    domain = firm.lower().replace(" ", "") + ".example"
    aum_idx = int(rng.choice(len(tx.AUM_BANDS), p=[0.3, 0.3, 0.2, 0.12, 0.08]))
    interests = rng.dirichlet(np.full(len(tx.TOPICS), 0.6))
    return {
        "advisor_id": advisor_id(index),
        "first_name": first,
        "last_name": last,
        "firm": firm,
        "branch": f"{firm.split()[0]} {tx.REGIONS[rng.integers(len(tx.REGIONS))].title()} "
        f"{int(rng.integers(1, 40)):02d}",
        "channel": channel,
        "region": tx.REGIONS[rng.integers(len(tx.REGIONS))],
        "aum_band": tx.AUM_BANDS[aum_idx],
        "email": f"{first}.{last}{index}@{domain}".lower(),
        "phone": _phone(rng),
        "created_at": (spec.start_date - timedelta(days=int(rng.integers(30, 3000)))).isoformat(),
        # latent traits, not written to the CRM file
        "_activity": float(rng.gamma(1.3, 0.55)),
        "_interests": interests,
        "_aum_idx": aum_idx,
        "_devices": int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])),
    }


def _phone(rng: np.random.Generator) -> str:
    area, exchange, line = rng.integers(201, 989), rng.integers(200, 999), rng.integers(0, 9999)
    return f"+1-{area}-{exchange}-{line:04d}"


def _ipv4(rng: np.random.Generator) -> str:
    octets = (
        rng.integers(11, 223),
        rng.integers(0, 255),
        rng.integers(0, 255),
        rng.integers(1, 254),
    )
    return ".".join(str(o) for o in octets)


def _account_number(rng: np.random.Generator) -> str:
    return f"4{rng.integers(100, 999)}-{rng.integers(1000, 9999)}-{rng.integers(10, 99)}"


def _uuid_from(digest: str) -> str:
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def email_sha256(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def simulate_visitor(spec: GenSpec, index: int) -> VisitorOutput:
    """Simulate all days of one visitor."""
    kind = spec.kind(index)
    rng = _rng(spec, index, 2)
    out = VisitorOutput()
    profile = advisor_profile(spec, index) if kind == "advisor" else None
    if profile:
        out.advisor = {k: v for k, v in profile.items() if not k.startswith("_")}
    n_devices = profile["_devices"] if profile else 1
    cookies = [f"ck-{spec.seed}-{index}-{d}" for d in range(n_devices)]
    device_ua = [tx.BROWSER_UAS[rng.integers(len(tx.BROWSER_UAS))] for _ in cookies]
    if kind == "bot" and index % 2 == 0:
        device_ua = [tx.CRAWLER_UAS[rng.integers(len(tx.CRAWLER_UAS))]]
    skew_ms = [
        int(np.clip(rng.normal(0, 90_000), -280_000, 280_000)) if rng.random() < 0.15 else 0
        for _ in cookies
    ]
    ips = [_ipv4(rng) for _ in cookies]
    interests = profile["_interests"] if profile else rng.dirichlet(np.ones(len(tx.TOPICS)))
    activity = profile["_activity"] if profile else (0.25 if kind == "anonymous" else 0.0)

    daily: list[dict[str, Any]] = []
    for day_offset in range(spec.days):
        day = spec.start_date + timedelta(days=day_offset)
        n_sessions = int(rng.integers(1, 4)) if kind == "bot" else int(rng.poisson(activity))
        counters: dict[str, Any] = {"downloads": 0, "pings": 0, "fund_views": defaultdict(int)}
        starts = sorted(float(s) for s in _session_starts(rng, n_sessions))
        last_end = -1e9
        for start in starts:
            start = max(start, last_end + 31 * 60)
            if start >= 86_400 - 60:
                break
            device = int(rng.integers(len(cookies)))
            late_days = int(rng.integers(1, 4)) if rng.random() < spec.late_rate else 0
            events, last_end = _session_events(
                rng,
                spec,
                kind,
                profile,
                interests,
                start,
                day,
                counters,
                cookie=cookies[device],
                ua=device_ua[device],
                ip=ips[device],
            )
            for event in events:
                true_ts = event["event_ts"]
                event["event_ts"] = true_ts + skew_ms[device]
                arrival = datetime.fromtimestamp(true_ts / 1000, UTC).date() + timedelta(late_days)
                copies = [arrival]
                if rng.random() < spec.duplicate_rate:
                    copies.append(arrival + timedelta(days=int(rng.integers(0, 2))))
                for copy_no, arrival_day in enumerate(copies):
                    line, bad_kind = _encode(rng, spec, event)
                    stats = out.stats[arrival_day]
                    out.lines[arrival_day].append(line)
                    stats["lines"] += 1
                    stats["late_lines"] += int(late_days > 0)
                    stats["duplicate_lines"] += int(copy_no > 0)
                    stats["bot_lines"] += int(kind == "bot")
                    if bad_kind:
                        stats["malformed"] += 1
                        stats[f"malformed_{bad_kind}"] += 1
        daily.append(counters)
        if profile:
            _notes_and_outcomes(rng, spec, profile, day, daily, out)
    return out


def _session_starts(rng: np.random.Generator, n: int) -> np.ndarray:
    business = rng.normal(15 * 3600, 3 * 3600, size=n)
    anytime = rng.uniform(0, 86_400, size=n)
    pick = rng.random(n) < 0.75
    return np.clip(np.where(pick, business, anytime), 0, 86_399)


def _page_for(rng: np.random.Generator, interests: np.ndarray) -> tuple[str, dict[str, str]]:
    roll = rng.random()
    if roll < 0.3:
        return tx.GENERIC_PAGES[rng.integers(len(tx.GENERIC_PAGES))], {}
    topic = tx.TOPICS[int(rng.choice(len(tx.TOPICS), p=interests))]
    if roll < 0.75:
        candidates = [f for f in tx.FUNDS if f[3] == topic]
        ticker, _name, asset_class, fund_topic = candidates[rng.integers(len(candidates))]
        page = {"fund_ticker": ticker, "asset_class": asset_class, "topic": fund_topic}
        return f"funds/{ticker.lower()}", page
    pages = tx.INSIGHT_PAGES[topic]
    return pages[rng.integers(len(pages))], {"topic": topic}


def _session_events(
    rng: np.random.Generator,
    spec: GenSpec,
    kind: str,
    profile: dict[str, Any] | None,
    interests: np.ndarray,
    start: float,
    day: date,
    counters: dict[str, Any],
    *,
    cookie: str,
    ua: str,
    ip: str,
) -> tuple[list[dict[str, Any]], float]:
    day_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    t = start
    is_bot = kind == "bot"
    n_views = int(rng.integers(40, 160)) if is_bot else 1 + int(rng.geometric(0.3))
    utm = tx.UTM[rng.integers(len(tx.UTM))]
    ref_urls, ref_p = zip(*tx.REFERRERS, strict=True)
    referrer = ref_urls[int(rng.choice(len(ref_urls), p=np.array(ref_p) / sum(ref_p)))]
    user_id: str | None = None
    events: list[dict[str, Any]] = []
    seq = 0

    def emit(event_type: str, at: float, url: str, page: dict[str, str], **props: str) -> None:
        nonlocal seq
        seq += 1
        digest = hashlib.blake2b(
            f"{spec.seed}|{cookie}|{day}|{start:.3f}|{seq}".encode(), digest_size=16
        ).hexdigest()
        events.append(
            {
                "event_id": _uuid_from(digest),
                "event_ts": day_ms + int(at * 1000),
                "cookie_id": cookie,
                "user_id": user_id,
                "event_type": event_type,
                "url": url,
                "referrer": current_referrer,
                "user_agent": ua,
                "ip": ip,
                "page": page or None,
                "properties": props or None,
            }
        )

    current_referrer = referrer
    for view in range(n_views):
        path, page = _page_for(rng, interests)
        url = f"{tx.SITE}/{path}"
        if view == 0 and utm:
            url += f"?utm_source={utm[0]}&utm_medium={utm[1]}&utm_campaign={utm[2]}"
        emit("page_view", t, url, page)
        if is_bot:
            t += float(rng.uniform(0.5, 3.0))
            current_referrer = url
            continue
        if view == 0 and profile and rng.random() < 0.35:
            user_id = profile["advisor_id"]
            emit("login", t + 2, f"{tx.SITE}/login", {})
        if view == 0 and rng.random() < 0.1:
            emit(
                "search",
                t + 3,
                url,
                page,
                search_query=tx.TOPICS[rng.integers(6)].replace("_", " "),
            )
        dwell = float(min(rng.exponential(55.0), 900.0))
        engaged = dwell * float(rng.uniform(0.4, 1.0))
        ping = 10.0
        while ping <= engaged:
            emit("page_ping", t + ping, url, page)
            counters["pings"] += 1
            ping += 10.0
        if page.get("fund_ticker"):
            counters["fund_views"][page["fund_ticker"]] += 1
            topic_weight = float(interests[tx.TOPICS.index(page["topic"])])
            if rng.random() < 0.08 + 0.5 * topic_weight:
                kind_of_doc = "factsheet" if rng.random() < 0.7 else "prospectus"
                doc = f"{page['fund_ticker'].lower()}-{kind_of_doc}"
                emit("document_download", t + min(dwell, 8), url, page, document_id=doc)
                counters["downloads"] += 1
        if rng.random() < 0.05:
            emit("video_play", t + min(dwell, 5), url, page, video_id=f"vid-{rng.integers(1, 40)}")
        if rng.random() < 0.25:
            emit("click", t + min(dwell, 4), url, page, target="cta")
        if rng.random() < 0.03:
            email = profile["email"] if profile else f"visitor{rng.integers(1e9)}@example.com"
            emit(
                "form_submit",
                t + dwell,
                url,
                page,
                form_id="contact",
                email_sha256=email_sha256(email),
            )
        t += dwell + float(rng.uniform(2, 25))
        current_referrer = url
    return events, t


def _encode(rng: np.random.Generator, spec: GenSpec, event: dict[str, Any]) -> tuple[bytes, str]:
    """Serialise an event; a small share of lines is damaged the ways real feeds are."""
    if rng.random() >= spec.malformed_rate:
        return json.dumps(event, separators=(",", ":")).encode(), ""
    bad_kind = MALFORMED_KINDS[int(rng.integers(len(MALFORMED_KINDS)))]
    damaged = dict(event)
    if bad_kind == "wrong_type":
        damaged["event_ts"] = datetime.fromtimestamp(event["event_ts"] / 1000, UTC).isoformat()
    elif bad_kind == "missing_field":
        del damaged[("event_id", "event_type", "cookie_id")[rng.integers(3)]]
    elif bad_kind == "impossible_timestamp":
        damaged["event_ts"] = int(rng.choice([0, 4_102_444_800_000]))  # 1970 or 2100
    line = json.dumps(damaged, separators=(",", ":")).encode()
    if bad_kind == "truncated_json":
        line = line[: len(line) // 2]
    elif bad_kind == "invalid_utf8":
        line = line.replace(b"/funds", b"/f\xc3\x28unds", 1).replace(
            b"northwind", b"north\xffwind", 1
        )
    return line, bad_kind


_NOTE_TOPIC_TEXT = {
    "esg": "asked about ESG integration and our stewardship report; interested in NWESX and NWGBX",
    "retirement": "discussed retirement income planning for clients near retirement; NWRIX came up",
    "fixed_income": "wants our rates outlook; looking at NWCBX and short duration NWSTX",
    "equity_growth": "reviewing large cap growth exposure; compared NWLGX with a competitor fund",
    "alternatives": "curious about private credit; requested the NWPCX interval fund deck",
    "tax_planning": "year-end tax planning; municipal bonds (NWMUX) for high-bracket clients",
}
_NOTE_CONCERNS = (
    "Concerned about fees versus passive alternatives.",
    "Unhappy with recent performance; underperformed the benchmark.",
    "Complained that the service team was slow to return calls.",
    "Mentioned Vanguard and BlackRock as alternatives they are considering.",
)


def _notes_and_outcomes(
    rng: np.random.Generator,
    spec: GenSpec,
    profile: dict[str, Any],
    day: date,
    daily: list[dict[str, Any]],
    out: VisitorOutput,
) -> None:
    interests = profile["_interests"]
    n_notes = int(rng.poisson(spec.notes_per_advisor_per_day * (0.5 + profile["_activity"])))
    intent = 0.0
    for n in range(n_notes):
        topic = tx.TOPICS[int(rng.choice(len(tx.TOPICS), p=interests))]
        pieces = [
            f"Spoke with {profile['first_name']} {profile['last_name']}.",
            _NOTE_TOPIC_TEXT[topic] + ".",
        ]
        if rng.random() < 0.35:
            pieces.append("Very interested, asked for a follow-up meeting and proposal.")
            intent += 1.0
        if rng.random() < 0.2:
            pieces.append(_NOTE_CONCERNS[rng.integers(len(_NOTE_CONCERNS))])
        if rng.random() < 0.4:
            pieces.append(f"Best to reach them at {profile['phone']} or {profile['email']}.")
        if rng.random() < 0.15:
            pieces.append(f"Client account {_account_number(rng)} discussed.")
        channel = ("call", "email", "meeting")[int(rng.choice(3, p=[0.5, 0.35, 0.15]))]
        created = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=float(np.clip(rng.normal(15 * 3600, 2.5 * 3600), 0, 86_399))
        )
        by_email = channel == "email" and rng.random() < 0.5
        # Rendering draws from its own generator, so documents never shift the other data.
        doc_rng = np.random.default_rng(
            [spec.seed, int(profile["advisor_id"][3:]), 3, day.toordinal(), n]
        )
        pieces += documents.extra_pii(doc_rng)
        if doc_rng.random() < 0.04:
            pieces = [documents.FOREIGN_BODIES[int(doc_rng.integers(2))]]
        note = {
            "note_id": f"N-{spec.seed}-{profile['advisor_id']}-{day:%Y%m%d}-{n}",
            "advisor_id": None if by_email else profile["advisor_id"],
            "email": profile["email"] if by_email else None,
            "author": tx.NOTE_AUTHORS[rng.integers(len(tx.NOTE_AUTHORS))],
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "channel": channel,
            "subject": f"{topic.replace('_', ' ').title()} follow-up",
            "body": "\n".join(pieces),
        }
        delivery = doc_rng.random()
        if channel == "email" and delivery < 0.6:
            out.files[day].append(
                (f"{note['note_id']}.eml", documents.render_eml(note, profile, doc_rng))
            )
        elif channel == "call" and delivery < 0.3:
            out.files[day].append((f"{note['note_id']}.txt", documents.render_txt(note, doc_rng)))
        else:
            if doc_rng.random() < 0.02:
                note["_damaged"] = True  # the writer truncates this line: a broken export
            out.notes[day].append(note)
    profile.setdefault("_intent_history", []).append(intent)

    window = daily[-14:]
    downloads = sum(d["downloads"] for d in window)
    pings = sum(d["pings"] for d in window)
    note_intent = sum(profile["_intent_history"][-30:])
    logit = (
        -6.2
        + 0.9 * math.log1p(downloads)
        + 0.35 * math.log1p(pings / 6)
        + 1.1 * math.log1p(note_intent)
        + 0.25 * profile["_aum_idx"]
    )
    if rng.random() < _sigmoid(logit):
        fund_views: dict[str, int] = defaultdict(int)
        for d in window:
            for ticker, count in d["fund_views"].items():
                fund_views[ticker] += count
        if fund_views:
            ticker = max(sorted(fund_views), key=fund_views.__getitem__)
        else:
            topic = tx.TOPICS[int(np.argmax(interests))]
            ticker = next(f[0] for f in tx.FUNDS if f[3] == topic)
        out.outcomes[day].append(_trade(rng, profile, day, ticker, "purchase"))
    if rng.random() < _sigmoid(-7.0 + 0.2 * profile["_aum_idx"]):
        ticker = tx.FUNDS[rng.integers(len(tx.FUNDS))][0]
        out.outcomes[day].append(_trade(rng, profile, day, ticker, "redemption"))


def _trade(
    rng: np.random.Generator, profile: dict[str, Any], day: date, ticker: str, action: str
) -> dict[str, Any]:
    scale = 10 ** (4.5 + 0.4 * profile["_aum_idx"])
    amount = round(float(rng.lognormal(math.log(scale), 0.8)), 2)
    return {
        "advisor_id": profile["advisor_id"],
        "trade_date": day.isoformat(),
        "fund_ticker": ticker,
        "action": action,
        "amount_usd": amount if action == "purchase" else -amount,
    }
