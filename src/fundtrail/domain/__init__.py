"""Pure domain logic: values and rules, no I/O (standard library and numpy only)."""
