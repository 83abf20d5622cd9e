//! Scanner checks (to come).
