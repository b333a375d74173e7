"""Render CRM notes the way they really arrive: JSON lines, .eml emails and .txt call notes.

Emails are MIME messages (plain, HTML-only or multipart/alternative), some in ISO-8859-1, with
quoted replies and signatures; call notes are text files, some with a UTF-8 BOM, some in
Latin-1, a few with a broken byte. Personal data is planted on purpose so redaction can be
tested: the advisor's name, email and phone, account numbers, SSN-like numbers, and links
carrying personal tokens.
"""

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import numpy as np

WHOLESALER_DOMAIN = "northwind-funds.example"

FOREIGN_BODIES = (
    "Hablé con el asesor sobre la planificación de la jubilación y los fondos de renta fija. "
    "Quiere una propuesta la próxima semana y está muy interesado en los fondos sostenibles.",
    "J'ai parlé avec le conseiller de la planification de la retraite et des fonds "
    "obligataires. Il souhaite une proposition la semaine prochaine et s'intéresse à l'ESG.",
)


def ssn_like(rng: np.random.Generator) -> str:
    return f"{rng.integers(100, 899)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}"


def personal_link(rng: np.random.Generator) -> str:
    token = "".join(rng.choice(list("abcdef0123456789"), size=24))
    return f"https://portal.northwind-funds.example/reset?token={token}&user=adv"


def extra_pii(rng: np.random.Generator) -> list[str]:
    """Occasional extra personal data in a note body."""
    pieces = []
    if rng.random() < 0.05:
        pieces.append(f"Client SSN {ssn_like(rng)} was mentioned by mistake.")
    if rng.random() < 0.05:
        pieces.append(f"Sent the password reset link {personal_link(rng)}.")
    if rng.random() < 0.05:
        pieces.append("Their assistant can be reached at (212) 555-0147 or +44 20 7946 0958.")
    return pieces


def render_eml(note: dict[str, Any], profile: dict[str, Any], rng: np.random.Generator) -> bytes:
    """An email from the advisor, as the mail gateway stores it."""
    msg = EmailMessage()
    author = note["author"]
    author_email = author.lower().replace(" ", ".") + f"@{WHOLESALER_DOMAIN}"
    msg["From"] = f"{profile['first_name']} {profile['last_name']} <{profile['email']}>"
    msg["To"] = f"{author} <{author_email}>"
    msg["Subject"] = note["subject"]
    msg["Date"] = format_datetime(datetime.fromisoformat(note["created_at"].replace("Z", "+00:00")))
    msg["Message-ID"] = f"<{note['note_id']}@mail.example>"
    msg["X-Note-Id"] = note["note_id"]
    signature = (
        f"\n-- \n{profile['first_name']} {profile['last_name']}\n{profile['firm']}\n"
        f"Direct: {profile['phone']}\n"
    )
    quoted = (
        f"\n\nOn Mon, Nov 16, 2026 at 9:12 AM {author} <{author_email}> wrote:\n"
        "> Thanks for your time today. Attached is the fund commentary we discussed.\n"
        "> Let me know if you have questions.\n"
    )
    text = note["body"] + (signature if rng.random() < 0.7 else "")
    text += quoted if rng.random() < 0.5 else ""
    charset = "iso-8859-1" if rng.random() < 0.2 else "utf-8"
    if charset == "iso-8859-1":
        text = text.replace("Spoke", "Café meeting: spoke", 1)
    style = rng.random()
    if style < 0.5:
        msg.set_content(text, charset=charset)
    else:
        markup = (
            "<html><body><p>" + html.escape(text).replace("\n", "<br>\n") + "</p></body></html>"
        )
        if style < 0.8:
            msg.set_content(text, charset=charset)
            msg.add_alternative(markup, subtype="html", charset=charset)
        else:
            msg.set_content(markup, subtype="html", charset=charset)
    return bytes(msg)


def render_txt(note: dict[str, Any], rng: np.random.Generator) -> bytes:
    """A call note exported as a text file from a dictation tool."""
    header = (
        f"Note-Id: {note['note_id']}\nAdvisor-Id: {note['advisor_id'] or ''}\n"
        f"Author: {note['author']}\nCreated: {note['created_at']}\nChannel: {note['channel']}\n"
        f"Subject: {note['subject']}\n\n"
    )
    text = header + note["body"] + "\n"
    roll = rng.random()
    if roll < 0.25:
        return b"\xef\xbb\xbf" + text.replace("Spoke", "Réunion: spoke", 1).encode("utf-8")
    if roll < 0.45:
        return text.replace("Spoke", "Réunion: spoke", 1).encode("latin-1", errors="replace")
    if roll < 0.5:
        return text.encode("utf-8").replace(b"Spoke", b"Sp\xffoke", 1)  # one broken byte
    return text.encode("utf-8")
