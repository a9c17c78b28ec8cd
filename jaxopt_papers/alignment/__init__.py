"""Preference alignment: self-play preference optimization (SPPO)."""
