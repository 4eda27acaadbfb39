//! Per-core counters kept by the reactor (plain integers on the core's own cache lines).
