"""Billing calendar: periods, proration, windows and business days (pure, no I/O)."""
