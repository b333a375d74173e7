"""CRM notes and emails: decoding, parsing, cleaning, PII redaction and text features."""
