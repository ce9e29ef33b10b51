"""Double-entry ledger core: accounts and balanced journal transactions (no I/O)."""
