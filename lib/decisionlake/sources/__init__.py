"""Raw -> bronze rules and validators of the CRM and trade sources."""
