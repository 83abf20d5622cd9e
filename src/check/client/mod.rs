//! Client checks (to come).
