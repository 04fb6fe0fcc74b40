"""An evaluation set with planted PII at known spans: realistic support-ticket sentences fmkit writes.

Every value is synthetic but valid for its recognizer: credit-card numbers pass the Luhn check,
IBANs the mod-97 check, phone numbers are in real North-American area codes, SSNs avoid the ranges
the SSA never issues. Each row records the exact character span and entity of every planted value,
so precision and recall per entity are exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST = ["James", "Maria", "Robert", "Aisha", "Chen", "Olivia", "Mohammed", "Sofia", "David", "Priya", "Lucas",
         "Emma", "Kwame", "Hannah", "Diego", "Yuki", "Thomas", "Fatima", "Daniel", "Laura"]
LAST = ["Johnson", "Garcia", "Smith", "Okafor", "Wang", "Brown", "Haddad", "Rossi", "Miller", "Sharma", "Silva",
        "Wilson", "Mensah", "Schmidt", "Lopez", "Tanaka", "Anderson", "Khan", "Martin", "Fischer"]
CITIES = ["Chicago", "Boston", "London", "Berlin", "Paris", "Toronto", "Madrid", "Seattle", "Dublin", "Mumbai",
          "Sydney", "Denver", "Atlanta", "Lisbon", "Vienna"]
DOMAINS = ["example.com", "mailbox.org", "corp-mail.net", "fastmail.com", "company.co.uk"]
AREA_CODES = ["212", "312", "415", "617", "646", "303", "206", "404", "713", "305"]
SITES = ["acme-support", "orderdesk", "shopfront", "billing-portal", "helpcenter"]

TEMPLATES = [
    "Hi, this is {PERSON} from {LOCATION}. My card {CREDIT_CARD} was charged twice, please call me on {PHONE_NUMBER}.",
    "Please send the invoice to {EMAIL_ADDRESS}; the refund should go to IBAN {IBAN_CODE}.",
    "Customer {PERSON} reports login failures from IP {IP_ADDRESS} since Monday.",
    "I followed the link {URL} but the page shows an error. Reach me at {EMAIL_ADDRESS}.",
    "For the tax form my SSN is {US_SSN} and I now live in {LOCATION}.",
    "{PERSON} asked us to update the phone number to {PHONE_NUMBER} and the e-mail to {EMAIL_ADDRESS}.",
    "Payment with {CREDIT_CARD} failed again, see the screenshot at {URL} for details.",
    "Our office in {LOCATION} cannot reach the server at {IP_ADDRESS}; {PERSON} is on it.",
    "The shipment for {PERSON} never arrived, tracking page {URL} has not changed in a week.",
    "Please wire the deposit to {IBAN_CODE} and confirm by phone at {PHONE_NUMBER}.",
    "The order arrived late and the box was damaged, but support was friendly.",
    "Can you explain the new pricing plan? The website is confusing about annual billing.",
]


@dataclass
class PlantedRow:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, entity)


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


def _value(entity: str, rng: random.Random) -> str:
    if entity == "PERSON":
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if entity == "LOCATION":
        return rng.choice(CITIES)
    if entity == "EMAIL_ADDRESS":
        return f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}{rng.randrange(100)}@{rng.choice(DOMAINS)}"
    if entity == "PHONE_NUMBER":
        number = f"{rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
        return rng.choice([f"({rng.choice(AREA_CODES)}) {number}", f"+1 {rng.choice(AREA_CODES)} {number.replace('-', ' ')}"])
    if entity == "CREDIT_CARD":
        number = luhn_complete(rng.choice(["4", "51", "55"]), 16, rng)
        return rng.choice([number, " ".join(number[i:i + 4] for i in range(0, 16, 4))])
    if entity == "IBAN_CODE":
        if rng.random() < 0.5:
            value = iban("DE", "".join(str(rng.randrange(10)) for _ in range(18)))
        else:
            value = iban("GB", "WEST" + "".join(str(rng.randrange(10)) for _ in range(14)))
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    if entity == "IP_ADDRESS":
        return f"{rng.choice([10, 172, 192, 84, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if entity == "URL":
        return f"https://www.{rng.choice(SITES)}.com/{rng.choice(['orders', 'help', 'account'])}/{rng.randrange(10000, 99999)}"
    if entity == "US_SSN":
        area = rng.choice([n for n in range(1, 900) if n != 666])
        return f"{area:03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"
    raise ValueError(entity)


def planted_pii(count: int = 300, seed: int = 0) -> list[PlantedRow]:
    """``count`` sentences from the templates with fresh values and their exact spans."""
    import re

    rng = random.Random(seed)
    rows = []
    for index in range(count):
        template = TEMPLATES[index % len(TEMPLATES)]
        row, position, text = PlantedRow(""), 0, ""
        for match in re.finditer(r"\{([A-Z_]+)\}", template):
            text += template[position:match.start()]
            value = _value(match.group(1), rng)
            row.spans.append((len(text), len(text) + len(value), match.group(1)))
            text += value
            position = match.end()
        row.text = text + template[position:]
        rows.append(row)
    return rows


def score_detection(rows: list[PlantedRow], found: list[list[tuple[int, int, str]]]) -> dict[str, dict]:
    """Precision/recall per entity: a found span counts when it overlaps a planted span of the same entity."""
    stats: dict[str, dict[str, int]] = {}
    for row, hits in zip(rows, found):
        for start, end, entity in row.spans:
            entry = stats.setdefault(entity, {"planted": 0, "found": 0, "true_positive": 0, "hits": 0})
            entry["planted"] += 1
            if any(e == entity and s < end and t > start for s, t, e in hits):
                entry["found"] += 1
        for start, end, entity in hits:
            entry = stats.setdefault(entity, {"planted": 0, "found": 0, "true_positive": 0, "hits": 0})
            entry["hits"] += 1
            if any(e == entity and s < end and t > start for s, t, e in row.spans):
                entry["true_positive"] += 1
    return {entity: {**v, "recall": v["found"] / v["planted"] if v["planted"] else None,
                     "precision": v["true_positive"] / v["hits"] if v["hits"] else None}
            for entity, v in sorted(stats.items())}
