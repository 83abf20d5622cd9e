//! The SYN reactor (stub).
use super::worker::{Group, Plan, Reporter};
pub(super) fn scan(_group: &Group, _plan: &Plan, _out: Reporter<'_>) -> std::io::Result<()> {
    Ok(())
}
