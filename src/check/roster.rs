//! Class rosters (to come).
