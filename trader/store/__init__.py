"""State: the store backends and the read-only view strategies and risk get."""
